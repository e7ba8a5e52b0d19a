"""host_tools.firmware.build: the portable code compiled with mpy-cross, each module named as it is
imported (its source name is then a name MicroPython holds anyway)."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools.firmware.build import (
    OPTIONAL,
    PORTABLE_PACKAGES,
    ROOT,
    BuildError,
    board_entries,
    board_hardware,
    board_manifest,
    board_modules,
    board_needs,
    board_radio,
    board_radios,
    check_whole,
    compile_file,
    compile_tree,
    core_modules,
    missing_modules,
    module_name,
    needed_modules,
    opt_level,
    portable_sources,
)
from host_tools.firmware.flash import DIRS
from host_tools.firmware.image_build import sources_for


def test_module_names():
    assert module_name(Path("agent/wire.py")) == "agent.wire"
    assert module_name(Path("hal/sim/radio.py")) == "hal.sim.radio"
    assert module_name(Path("boards/__init__.py")) == "boards"
    assert module_name(Path("hal/sim/__init__.py")) == "hal.sim"


@pytest.mark.skipif(shutil.which("micropython") is None, reason="needs the MicroPython unix port")
@pytest.mark.parametrize("debug", [False, True])
def test_a_traceback_names_the_module_and_function_and_with_debug_the_line(tmp_path, debug):
    for c in compile_tree([Path("agent/__init__.py"), Path("agent/eui.py")], opt_level(debug)):
        out = tmp_path / c.target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(c.data)
    code = "import sys\nfrom agent.eui import parse_eui\ntry:\n parse_eui('zz')\nexcept ValueError as e:\n sys.print_exception(e)"
    r = subprocess.run(["micropython", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    raised = next(
        n for n, line in enumerate((ROOT / "agent/eui.py").read_text().splitlines(), 1) if "8 hex pairs" in line
    )
    line = raised if debug else 1  # -O3 keeps no line-number table: every line is 1
    assert f'File "agent.eui", line {line}, in parse_eui' in r.stdout + r.stderr, r.stdout + r.stderr


def test_the_portable_code_does_not_rely_on_assert():
    # what a board is flashed with is compiled at -O3, which leaves out assert statements and
    # `if __debug__:` blocks: the portable code must behave the same without them
    for src in portable_sources():
        tree = ast.parse((ROOT / src).read_text(), str(src))
        asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
        debug = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "__debug__"]
        assert not asserts and not debug, f"{src}: assert or __debug__ on lines {asserts + debug}"


# -- an image is whole, or it is not built ------------------------------------------------------

BOARDS = ("sim", "unix", "heltec_wifi_lora32_v3", "pico_rfm69", "nucleo_wl55jc")


def _tree(tmp_path: Path, leave_out: str = "") -> Path:
    """A copy of the portable packages, less the files under `leave_out`."""
    for pkg in PORTABLE_PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    if leave_out:
        gone = tmp_path / leave_out
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    return tmp_path


def _targets(root: Path) -> list[str]:
    return [
        p.relative_to(root).with_suffix(".mpy").as_posix()
        for pkg in PORTABLE_PACKAGES
        for p in (root / pkg).rglob("*.py")
    ]


@pytest.mark.parametrize("board", BOARDS)
def test_every_board_image_from_this_tree_is_whole(board):
    needed = needed_modules(board_entries(board))
    assert {"agent.hub", "agent.server", "hal.compat", "boards." + board} <= set(needed)
    assert missing_modules(board, _targets(ROOT)) == {}
    check_whole(board, _targets(ROOT))


def test_the_board_needs_its_own_drivers_only():
    heltec = set(needed_modules(board_entries("heltec_wifi_lora32_v3")))
    assert "hal.sx126x" in heltec and "hal.rfm69" not in heltec and "hal.sim.radio" not in heltec
    assert {"hal.sim.radio", "hal.sim.clock"} <= set(needed_modules(board_entries("unix")))


def test_the_virtual_boards_simulated_world_is_its_hardware_never_its_image(tmp_path):
    # hal.sim is what the virtual board supplies itself (boards/unix.py _HARDWARE): an image
    # neither carries it nor is refused for lacking it, and what it imports of the firmware is in
    root = _tree(tmp_path, "hal/sim")
    hardware = set(board_hardware("unix"))
    assert {"hal.sim", "hal.sim.clock", "hal.sim.radio", "hal.sim.han", "hal.sim.chips.sx126x"} <= hardware
    assert not hardware & set(board_modules("unix")) and not hardware & set(board_modules("unix", radio="sx1262"))
    assert not {m for m in missing_modules("unix", _targets(root), root) if m.startswith("hal.sim")}
    assert "hal.contracts" in board_needs("unix") and "hal.han_frame" in board_needs("unix")
    check_whole("heltec_wifi_lora32_v3", _targets(root), root)
    assert board_hardware("heltec_wifi_lora32_v3") == ()


@pytest.mark.parametrize("gone", ["agent/outbox.py", "hal/compat.py", "agent/fw_install.py"])
def test_any_missing_module_of_the_closure_is_named(tmp_path, gone):
    root = _tree(tmp_path, gone)
    module = gone[:-3].replace("/", ".")
    assert module in missing_modules("pico_rfm69", _targets(root), root)


def test_names_a_package_defines_are_not_modules(tmp_path):
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "__init__.py").write_text("try:\n    VERSION = '1'\nexcept ImportError:\n    pass\n")
    (tmp_path / "agent" / "run.py").write_text("from agent import VERSION, wire\ndef f():\n    from . import cbor\n")
    (tmp_path / "agent" / "wire.py").write_text("from hal.compat import const\n")
    needed = needed_modules(["agent.run"], tmp_path)
    assert "agent.VERSION" not in needed
    assert {"agent.wire", "agent.cbor", "hal.compat", "hal"} <= set(needed)
    assert needed["agent.cbor"] == "agent.run"


# -- each board gets what its manifest names ----------------------------------------------------

REAL_BOARDS = {"heltec_wifi_lora32_v3": "hal.sx126x", "pico_rfm69": "hal.rfm69", "nucleo_wl55jc": "hal.stm32wl"}
DRIVERS = {"hal.sx126x", "hal.rfm69", "hal.stm32wl"}
TRIAGE = {"agent.triage_link", "agent.triage", "hal.tls", "hal.tls_stream", "hal.x509"}


def _image(board: str) -> set[str]:
    return {module_name(p) for p in sources_for(board)}


@pytest.mark.parametrize("board", BOARDS)
def test_the_image_a_board_gets_holds_all_it_needs_and_no_more(board):
    image = _image(board)
    # the closure of the board's entries (its manifest's included), imports in functions too
    assert set(board_needs(board)) <= image
    assert image <= set(board_needs(board)) | {"boards." + board}
    check_whole(board, [p.with_suffix(".mpy").as_posix() for p in sources_for(board)])
    assert core_modules() <= image and "agent.examples" not in image
    assert {p.parent.as_posix() for p in sources_for(board)} <= set(DIRS)  # dbch flash makes them


@pytest.mark.parametrize("board", sorted(REAL_BOARDS))
def test_a_real_board_gets_no_simulation_and_no_other_radios_driver(board):
    image = _image(board)
    assert not {m for m in image if m.startswith("hal.sim") or m in ("boards.sim", "boards.unix", "boards.simchips")}
    assert {m for m in image if m.startswith("boards.")} == {"boards." + board, "boards.mcu_board"}
    assert image & DRIVERS == {REAL_BOARDS[board]} | ({"hal.sx126x"} if board == "nucleo_wl55jc" else set())


def test_the_sim_board_carries_every_real_boards_radio():
    image = _image("sim")  # the agent under CPython: every radio kind, chosen when it starts
    assert {"boards.simchips", "hal.sim.chips.sx126x", "hal.sim.chips.rfm69", "hal.sim.chips.stm32wl"} <= image
    assert {"boards." + b for b in REAL_BOARDS} | DRIVERS <= image


# the virtual board's image follows its radio record: radio -> (the board that carries it, its chips)
RADIOS = {
    "sx1262": ("heltec_wifi_lora32_v3", {"hal.sim.chips.sx126x"}),
    "rfm69": ("pico_rfm69", {"hal.sim.chips.rfm69"}),
    "stm32wl": ("nucleo_wl55jc", {"hal.sim.chips.stm32wl", "hal.sim.chips.sx126x"}),
}
CHIPS = {"hal.sim.chips.sx126x", "hal.sim.chips.rfm69", "hal.sim.chips.stm32wl"}


def _radio_image(radio: str | None) -> set[str]:
    return {module_name(p) for p in sources_for("unix", radio)}


def test_the_virtual_boards_default_image_has_no_driver_and_no_chip():
    assert board_radios("unix") and board_radio("unix") == "sim" and board_radio("unix", " sim\n") == "sim"
    image = _radio_image(None)
    assert image == _radio_image("sim") == _image("unix")
    assert "boards.unix" in image and not {m for m in image if m.startswith("hal.sim")}  # its hardware
    assert not image & (DRIVERS | CHIPS | {"hal.radio_driver", "boards.simchips", "hal.sim.chips", "boards.mcu_board"})
    assert {m for m in image if m.startswith("boards.")} == {"boards.unix"}


@pytest.mark.parametrize("radio", sorted(RADIOS))
def test_a_virtual_board_with_a_driver_gets_exactly_its_own(radio):
    board, chips = RADIOS[radio]
    image = _radio_image(radio)
    assert _radio_image(board) == image and board_radio("unix", board) == radio  # the record may name the board
    assert not image & CHIPS and chips <= set(board_hardware("unix"))  # the chips are its hardware
    assert image & DRIVERS == {REAL_BOARDS[board]} | ({"hal.sx126x"} if radio == "stm32wl" else set())
    assert {m for m in image if m.startswith("boards.")} == {
        "boards.unix",
        "boards.simchips",
        "boards." + board,
        "boards.mcu_board",
    }
    assert image - _radio_image("sim") == set(board_radios("unix")[radio])  # what its radio adds, no more
    # whole, and nothing it does not need (the other radios' modules left out of the closure)
    needs = set(board_needs("unix", radio=radio))
    assert needs <= image <= needs | {"boards.unix"}
    check_whole("unix", [p.with_suffix(".mpy").as_posix() for p in sources_for("unix", radio)], radio=radio)
    with pytest.raises(BuildError, match=r"would lack boards\.\w+, which the board imports \(and \d+ more\)"):
        check_whole("unix", [f"{m.replace('.', '/')}.mpy" for m in _radio_image("sim")], radio=radio)


def test_a_radio_the_virtual_board_has_no_modules_for_is_refused():
    for name in ("esp32", "mcu_board", "simchips"):
        with pytest.raises(BuildError, match=f"board 'unix' has no radio '{name}': radios sim, sx1262, rfm69, stm32wl"):
            sources_for("unix", name)
    with pytest.raises(BuildError, match="board 'pico_rfm69' has one radio"):
        sources_for("pico_rfm69", "sx1262")
    assert board_radio("pico_rfm69") is None and board_radios("pico_rfm69") == {}


def test_the_triage_link_is_where_the_board_has_a_network():
    from boards import load

    assert OPTIONAL == ("agent.triage_link",)
    for board in BOARDS:
        has = load(board).TRIAGE_LINK  # what the agent offers (agent.run)
        assert ("agent.triage_link" in board_manifest(board)) is has, board
        assert (TRIAGE <= _image(board)) is has and (not TRIAGE & _image(board)) is not has, board
    assert {b for b in BOARDS if not load(b).TRIAGE_LINK} == {"pico_rfm69", "nucleo_wl55jc"}


def test_the_manifest_costs_a_board_nothing():
    # a private const(): the host reads it from the source, MicroPython compiles it away
    for board in BOARDS:
        data = compile_file(Path(f"boards/{board}.py")).data
        assert b"_MANIFEST" not in data and b"hal.sim.chips.air" not in data, board
        assert b"_RADIO_MANIFEST" not in data and b"hal.sim.chips.rfm69" not in data, board


def test_a_module_the_manifest_forgets_is_named_with_where_to_add_it(tmp_path):
    root = _tree(tmp_path)
    src = root / "boards" / "pico_rfm69.py"
    src.write_text(src.read_text().replace('        "hal.rfm69",\n', ""))
    assert "hal.rfm69" not in board_manifest("pico_rfm69", root)
    targets = [f"{m.replace('.', '/')}.mpy" for m in board_manifest("pico_rfm69", root)]
    targets += [f"{m.replace('.', '/')}.mpy" for m in core_modules(root) | {"boards.pico_rfm69"}]
    with pytest.raises(BuildError) as e:
        check_whole("pico_rfm69", targets, root)
    assert "would lack hal.rfm69, which boards.pico_rfm69 imports" in str(e.value)
    assert "add it to the manifest in boards/pico_rfm69.py" in str(e.value)


def test_a_board_module_without_a_manifest_builds_no_image(tmp_path):
    root = _tree(tmp_path)
    src = root / "boards" / "heltec_wifi_lora32_v3.py"
    src.write_text(src.read_text().replace("_MANIFEST = const(", "_OTHER = const("))
    with pytest.raises(BuildError, match="has no manifest"):
        board_manifest("heltec_wifi_lora32_v3", root)


# -- compile once ------------------------------------------------------------------------------


@pytest.fixture
def counted_mpy_cross(tmp_path, monkeypatch):
    """mpy-cross behind a script that logs each compile; dbch's cache in tmp_path."""
    from host_tools.firmware import build

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    log = tmp_path / "compiles.log"
    wrapper = tmp_path / "mpy-cross"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = --version ] || echo "$@" >> {log}\nexec {build.mpy_cross_binary()} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(build, "mpy_cross_binary", lambda: str(wrapper))

    def compiles() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    return compiles


def test_a_module_is_compiled_once_and_again_only_when_its_source_changes(tmp_path, counted_mpy_cross):
    source = tmp_path / "mod.py"
    source.write_text("X = 1\n")
    first = compile_tree([source])[0].data
    assert counted_mpy_cross() == 1
    assert compile_tree([source])[0].data == first and counted_mpy_cross() == 1
    source.write_text("X = 2\n")
    second = compile_tree([source])[0].data
    assert second != first and counted_mpy_cross() == 2


def test_a_damaged_or_unwritable_cache_is_compiled_through(tmp_path, counted_mpy_cross):
    source = tmp_path / "mod.py"
    source.write_text("X = 1\n")
    good = compile_tree([source])[0].data
    (kept,) = (tmp_path / "cache").rglob("*.mpy")
    kept.write_bytes(b"")  # what a full disk may have left
    assert compile_tree([source])[0].data == good and counted_mpy_cross() == 2
    shutil.rmtree(tmp_path / "cache")
    (tmp_path / "cache").write_text("not a directory")
    assert compile_tree([source])[0].data == good and counted_mpy_cross() == 3


def test_the_optimisation_level_is_part_of_what_a_compiled_module_is_kept_under(tmp_path, counted_mpy_cross):
    source = tmp_path / "mod.py"
    source.write_text("def f(x):\n    assert x\n    return x\n")
    flashed = compile_tree([source])[0].data
    debug = compile_tree([source], opt_level(True))[0].data
    assert counted_mpy_cross() == 2 and len(flashed) < len(debug)
    assert compile_tree([source])[0].data == flashed and compile_tree([source], opt_level(True))[0].data == debug
    assert counted_mpy_cross() == 2


def test_the_tree_keeps_its_order_when_compiled_side_by_side(counted_mpy_cross):
    sources = [Path("agent/eui.py"), Path("agent/__init__.py"), Path("agent/cbor.py")]
    assert [c.source for c in compile_tree(sources)] == sources
    assert counted_mpy_cross() == 3


def test_the_import_closure_is_the_same_from_its_cache_and_after_damage(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = board_needs("heltec_wifi_lora32_v3")
    kept = sorted((tmp_path / "cache").rglob("*.json"))
    assert len(kept) >= len(first) // 2  # the sources' facts were kept
    assert board_needs("heltec_wifi_lora32_v3") == first
    for f in kept:
        f.write_text("{")  # what a full disk may have left
    assert board_needs("heltec_wifi_lora32_v3") == first
