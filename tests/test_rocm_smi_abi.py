"""The rocm_smi driver's hand-declared ROCm SMI ABI against the real rocm_smi.h.

The driver declares the slice of the C API it uses (cpp/src/drivers/rocm_smi/rocm_smi_abi.hpp,
rocm_smi_library.hpp, the gpu_metrics offsets of cpp/src/drivers/amd_common/gpu_metrics.hpp) so
that cuagent builds without ROCm. cpp/tests/abi/rocm_smi_abi_check.cpp compares that with the
header of Debian's librocm-smi-dev (5.2.3) in static_asserts; these tests compile it, show
that what it lists as absent from 5.2.3 is exactly what the header lacks, and show that it
fails, naming the culprit, when a declaration is wrong.

Without the header these tests skip saying why, except in CI (env CI set), where they fail:
scripts/ci-system-deps installs librocm-smi-dev there, as root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
DRIVERS = ROOT / "cpp" / "src" / "drivers"
CHECK = ROOT / "cpp" / "tests" / "abi" / "rocm_smi_abi_check.cpp"
LIBRARY_CPP = DRIVERS / "rocm_smi" / "rocm_smi_library.cpp"
HEADER = Path("/usr/include/rocm_smi/rocm_smi.h")


def _unavailable(why: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the ROCm SMI ABI check (scripts/ci-system-deps installs "
                    "librocm-smi-dev as root)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def cxx() -> str:
    if not HEADER.exists():
        _unavailable(f"ROCm SMI's header {HEADER} is not installed (apt-get install librocm-smi-dev)")
    found = next((shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++")
                  if c and shutil.which(c)), None)
    if found is None:
        _unavailable("no C++ compiler (c++, g++, clang++) to compile the ABI check")
    return found


def _compile(cxx: str, source: Path, include: Path = DRIVERS, *flags: str) -> subprocess.CompletedProcess[str]:
    """A syntax-only C++17 compile; diagnostics in ASCII so that they can be matched. Our
    headers are on the quote path only, so <rocm_smi/rocm_smi.h> can only be the system's."""
    limit = ["-ferror-limit=0"] if "clang" in Path(cxx).name else ["-fmax-errors=0"]
    return subprocess.run([cxx, "-std=c++17", "-fsyntax-only", *limit, *flags, "-iquote", str(include), str(source)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "LC_ALL": "C"})


def _errors(result: subprocess.CompletedProcess[str]) -> str:
    """The error lines of a compile (the context lines are long and many)."""
    return "\n".join(line for line in result.stderr.splitlines() if "error:" in line)


def _list(macro: str) -> list[tuple[str, list[str]]]:
    """The entries, one a line, of a list macro in the check file: (kind, arguments)."""
    text = CHECK.read_text()
    at = text.index(f"#define {macro}(")
    entries = []
    for line in text[at:].splitlines()[1:]:
        found = re.match(r"\s*(\w+)\(([^()]*)\)\s*(\\?)$", line)
        assert found is not None, f"{macro}: a line that is not an entry: {line!r}"
        entries.append((found.group(1), [a.strip() for a in found.group(2).split(",")]))
        if not found.group(3):
            break
    assert entries, f"{macro}: no entries read from {CHECK.name}"
    return entries


# ---- the check itself -----------------------------------------------------------------------

def test_our_declarations_match_the_real_rocm_smi_header(cxx: str) -> None:
    result = _compile(cxx, CHECK, DRIVERS, "-Wall", "-Wextra", "-Werror")
    assert result.returncode == 0, "our ROCm SMI declarations differ from rocm_smi.h:\n" + _errors(result)


def _probe(kind: str, args: list[str]) -> tuple[str, str, Optional[str]]:
    """(name to find in the error, expression that compiles only if the header has the
    entry, control expression that must compile) for one entry of the absent list."""
    if kind == "FUNCTION":
        return args[1], f"&::{args[1]}", None
    if kind == "STATUS":
        return args[1], args[1], None
    assert kind == "FIELD", kind
    return args[2], f"offsetof({args[1]}, {args[2]})", f"sizeof({args[1]})"


def test_what_the_check_lists_absent_is_exactly_what_the_header_lacks(cxx: str, tmp_path: Path) -> None:
    entries = _list("ROCM_SMI_ABSENT_FROM_5_2_3")
    source = tmp_path / "absent_probe.cpp"
    lines = ["#include <rocm_smi/rocm_smi.h>", "#include <cstddef>"]
    at: dict[int, tuple[str, str]] = {}      # probe's line -> (entry, name its error must name)
    controls: set[int] = set()
    for i, (kind, args) in enumerate(entries):
        name, probe, control = _probe(kind, args)
        if control is not None:
            lines.append(f"static const auto control_{i} = {control};")
            controls.add(len(lines))
        lines.append(f"static const auto probe_{i} = {probe};")
        at[len(lines)] = (f"{kind}({', '.join(args)})", name)
    source.write_text("\n".join(lines) + "\n")
    result = _compile(cxx, source)
    errors: dict[int, str] = {}
    for line in result.stderr.splitlines():
        found = re.match(rf"{re.escape(str(source))}:(\d+):\d+: error: (.*)", line)
        if found:
            errors.setdefault(int(found.group(1)), found.group(2))
    missing_structs = [errors[line] for line in sorted(controls & errors.keys())]
    assert not missing_structs, "a struct the absent list names is not in rocm_smi.h:\n" + "\n".join(missing_structs)
    declared = [entry for line, (entry, _) in at.items() if line not in errors]
    assert not declared, ("rocm_smi.h has these, so check them in rocm_smi_abi_check.cpp rather than list "
                          "them absent: " + ", ".join(declared))
    # Each probe fails because the name is missing, not for another reason.
    unrelated = [f"{entry}: {errors[line]}" for line, (entry, name) in at.items() if f"'{name}'" not in errors[line]
                 and f"'::{name}'" not in errors[line]]
    assert not unrelated, "probes failed for another reason than a missing name:\n" + "\n".join(unrelated)
    assert set(errors) == set(at), "errors outside the probes:\n" + _errors(result)


def test_the_library_looks_up_each_member_by_the_symbol_the_check_compares() -> None:
    # Library::Library (rocm_smi_library.cpp) pairs each member of Functions with the
    # symbol it looks up; the check compares each member with the header's declaration of
    # the symbol it names, so the two pairings must be the same.
    looked_up = dict((member, symbol) for symbol, member in
                     re.findall(r'library_\.lookup\("(\w+)", fn_\.(\w+)\)', LIBRARY_CPP.read_text()))
    assert len(looked_up) >= 15, f"no lookups read from {LIBRARY_CPP.name}: not the code this test knows"
    listed: dict[str, str] = {}
    for macro in ("CHECKED_FUNCTIONS", "SIGNEDNESS_CHECKED_FUNCTIONS", "ROCM_SMI_ABSENT_FROM_5_2_3"):
        for kind, args in _list(macro):
            if kind in ("X", "FUNCTION"):
                assert args[0] not in listed, f"{args[0]} is listed twice in {CHECK.name}"
                listed[args[0]] = args[1]
    assert listed == looked_up


# ---- the check can fail -------------------------------------------------------------------

# A wrong declaration, made in a scratch copy of the driver sources: (file under
# cpp/src/drivers, text, replacement, what the compile error must say).
BREAKAGES = {
    "struct_field": ("rocm_smi/rocm_smi_abi.hpp",
                     "    std::uint32_t current;\n    std::uint64_t frequency[32];",
                     "    std::uint16_t current;\n    std::uint64_t frequency[32];",
                     "rocm::FrequenciesV5::current is not at the offset, or not the size, of rsmi_frequencies_t::current"),
    "enum_value": ("rocm_smi/rocm_smi_abi.hpp", "kClkTypeMem = 0x4;", "kClkTypeMem = 0x3;",
                   "kClkTypeMem is not RSMI_CLK_TYPE_MEM"),
    "status_value": ("rocm_smi/rocm_smi_abi.hpp", "kBusy = 0x10,", "kBusy = 0x11,",
                     "rocm::kBusy is not RSMI_STATUS_BUSY"),
    "status_unlisted": ("rocm_smi/rocm_smi_abi.hpp", "kUnknownError = 0xFFFFFFFF,",
                        "kNewStatus = 0x17,\n    kUnknownError = 0xFFFFFFFF,",
                        "enumeration value 'kNewStatus' not handled in switch"),
    "parameter_type": ("rocm_smi/rocm_smi_abi.hpp", "std::uint32_t, std::int64_t*);", "std::uint32_t, std::int32_t*);",
                       "rsmi_dev_temp_metric_get: Functions::temp_metric does not match rocm_smi.h"),
    "arity": ("rocm_smi/rocm_smi_abi.hpp", "Status (*)(std::uint32_t, char*, std::size_t);",
              "Status (*)(std::uint32_t, char*);", "function Name: a different number of parameters than rocm_smi.h"),
    "member_unlisted": ("rocm_smi/rocm_smi_library.hpp", "    U32Fn busy_percent = nullptr;",
                        "    U32Fn busy_percent = nullptr;\n    U32Fn fan_speed = nullptr;",
                        "a member of rocm::Functions is neither checked nor listed absent here"),
    "metrics_offset": ("amd_common/gpu_metrics.hpp", "kCurrentUclk = 58;", "kCurrentUclk = 60;",
                       "metrics::kCurrentUclk is not the offset, or 2 not the size, of rsmi_gpu_metrics_t::current_uclk"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_check_fails_naming_a_wrong_declaration(cxx: str, tmp_path: Path, breakage: str) -> None:
    path, text, replacement, message = BREAKAGES[breakage]
    scratch = tmp_path / "drivers"
    for folder in ("rocm_smi", "amd_common", "common"):
        shutil.copytree(DRIVERS / folder, scratch / folder)
    original = (scratch / path).read_text()
    assert original.count(text) == 1, f"{path} no longer holds {text!r}: update this breakage"
    (scratch / path).write_text(original.replace(text, replacement))
    result = _compile(cxx, CHECK, include=scratch)
    assert result.returncode != 0, f"the check compiled with a wrong declaration ({breakage})"
    assert message in result.stderr, f"the error does not say {message!r}:\n" + _errors(result)
