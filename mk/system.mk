# System packages the build and the tests need, installed with apt on a Debian or Ubuntu machine
# (CI starts from a clean one). Included from the main Makefile; packages already installed
# are left as they are.
#
#   build-essential  C/C++ toolchain: llama-cpp-python compiles llama.cpp, node-gyp compiles
#                    code-server's native modules
#   git              tests list the repository's files with `git ls-files`
#   python3-venv     `python3 -m venv` on Debian
#   libkrb5-dev      GSSAPI headers for code-server's `kerberos` module (its postinstall builds it)
#   chromium         the browser tests/editors/test_vscode.py drives
#   nodejs, npm      the VS Code extension's build and tests; only when npm is missing (a Node
#                    from NodeSource ships its own npm, which Debian's would conflict with)

SYSTEM_PACKAGES := build-essential git python3-venv libkrb5-dev chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: system-deps

system-deps:
	@if ! command -v apt-get >/dev/null; then \
	  echo "no apt-get here: install the equivalents of $(SYSTEM_PACKAGES) nodejs npm yourself"; \
	  exit 0; \
	fi; \
	missing=""; \
	for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# `make test` on a clean machine installs them before it builds anything (the virtualenv needs
# the toolchain); `make run` leaves the machine's packages alone.
ifneq ($(filter test test-quick,$(MAKECMDGOALS)),)
$(VENV)/.core: | system-deps
endif
