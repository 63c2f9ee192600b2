"""The cores users really install, found where arduino-cli puts them: fixtures made from Debian's core and
toolchain, laid out as arduino-cli lays out a data directory and a sketchbook."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


from conftest import PLATFORM, Build, needs_toolchain, run_cli
from fbuild_graph.arduino import installs
from fbuild_graph.arduino import properties

TOOLCHAIN = "7.3.0-atmel3.6.1-arduino7"
SKETCHES = ["eeprom_clear", "eeprom_read", "master_reader"]
UPSTREAM_COMPILER_PATH = "compiler.path={runtime.tools.avr-gcc.path}/bin/"


def _example(name: str) -> Path:
    return next(PLATFORM.glob(f"libraries/*/examples/{name}"))


def _upstream_core(release: Path) -> None:
    """Debian's core as the upstream release ships it: the compiler found through the avr-gcc tool."""
    shutil.copytree(PLATFORM, release, symlinks=False)
    text = (release / "platform.txt").read_text()
    (release / "platform.txt").write_text("\n".join(UPSTREAM_COMPILER_PATH if line.startswith("compiler.path=") else line
                                                    for line in text.splitlines()) + "\n")


def _toolchain(folder: Path) -> None:
    """A tool release folder whose bin/ holds Debian's AVR programs."""
    (folder / "bin").mkdir(parents=True)
    for program in Path("/usr/bin").glob("avr-*"):
        (folder / "bin" / program.name).symlink_to(program)


def _data_dir(root: Path, *, with_tools: bool = True, requires: str = TOOLCHAIN) -> Path:
    data = root / "arduino15"
    release = data / "packages" / "arduino" / "hardware" / "avr" / "1.8.6"
    _upstream_core(release)
    (release / "installed.json").write_text(json.dumps({"packages": [{"name": "arduino", "platforms": [{
        "architecture": "avr", "version": "1.8.6",
        "toolsDependencies": [{"packager": "arduino", "name": "avr-gcc", "version": requires}]}]}]}))
    if with_tools:
        _toolchain(data / "packages" / "arduino" / "tools" / "avr-gcc" / TOOLCHAIN)
    return data


def _build(root: Path, *args: str, env: dict[str, str], cwd: Path | None = None,
           sketches: list[str] = SKETCHES) -> tuple[Path, object]:
    out = root / "out"
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        proc = run_cli("compile-many", *args, "-o", str(out), *(str(_example(s)) for s in sketches), cwd=cwd)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return out, proc


def _same_firmware(out: Path, reference: Build, sketches=SKETCHES) -> None:
    for name in sketches:
        ours = (out / "sketches" / name / "firmware.hex").read_bytes()
        assert ours == Path(reference.by_id[name]["out_dir"], "firmware.hex").read_bytes(), name


@needs_toolchain
def test_an_arduino_cli_data_directory_builds_with_no_flags(tmp_path, big_build):
    data = _data_dir(tmp_path)
    out, proc = _build(tmp_path, "--board", "uno", env={"ARDUINO_DIRECTORIES_DATA": str(data)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _same_firmware(out, big_build)
    log = (out / "stage1" / "core.log").read_text()
    assert f"{data}/packages/arduino/tools/avr-gcc/{TOOLCHAIN}/bin/avr-g++" in log
    assert f"{data}/packages/arduino/hardware/avr/1.8.6/cores/arduino" in log
    assert "note: using arduino:avr 1.8.6 (Boards Manager)" in proc.stderr and "1.8.7 (Debian)" in proc.stderr


@needs_toolchain
def test_a_tool_no_folder_provides_comes_from_path_and_says_so(tmp_path, big_build):
    data = _data_dir(tmp_path, with_tools=False, requires="")
    (data / "packages" / "arduino" / "hardware" / "avr" / "1.8.6" / "installed.json").unlink()
    out, proc = _build(tmp_path, "--board", "uno", env={"ARDUINO_DIRECTORIES_DATA": str(data)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _same_firmware(out, big_build)
    assert "using the one on PATH (/usr/bin/avr-gcc), so {runtime.tools.avr-gcc.path} = /usr" in proc.stderr


@needs_toolchain
def test_tools_and_hardware_given_relative_are_found(tmp_path, big_build):
    hardware = tmp_path / "hw" / "arduino" / "avr"
    _upstream_core(hardware)
    _toolchain(tmp_path / "tools" / "avr-gcc" / TOOLCHAIN)
    out, proc = _build(tmp_path, "--board", "uno", "--hardware", "hw", "--tools", "tools", env={}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _same_firmware(out, big_build)
    assert f"{tmp_path}/tools/avr-gcc/{TOOLCHAIN}/bin/avr-g++" in (out / "stage1" / "core.log").read_text()


@needs_toolchain
def test_a_required_tool_not_installed_is_one_line_naming_it(tmp_path):
    data = _data_dir(tmp_path, with_tools=False)
    _, proc = _build(tmp_path, "--board", "uno", env={"ARDUINO_DIRECTORIES_DATA": str(data)})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"needs tool arduino:avr-gcc@{TOOLCHAIN}" in proc.stderr and "--tools" in proc.stderr


# a third-party platform in the sketchbook: another's core, hooks, an objcopy recipe of its own ---------------

VENDOR_PLATFORM = """name=VendorX AVR
version=1.0.0
recipe.hooks.sketch.prebuild.1.pattern=bash -c "echo '#define GENERATED 42' > '{build.path}/sketch/generated.h'"
recipe.hooks.linking.postlink.1.pattern=bash -c "echo postlink > '{build.path}/postlink.txt'"
recipe.hooks.postbuild.1.pattern=bash -c "echo '{sketch_path}' '{build.source.path}' > '{build.path}/sketch_path.txt'"
recipe.hooks.savehex.presavehex.1.pattern=false
recipe.objcopy.progmem.pattern="{compiler.path}{compiler.objcopy.cmd}" -O binary -j .text "{build.path}/{build.project_name}.elf" "{build.path}/{build.project_name}.progmem.bin"
"""


def _vendor_platform(sketchbook: Path) -> None:
    """`vendorx:avr:pro`: the Uno's settings on the core and variant of the installed arduino:avr."""
    platform = sketchbook / "hardware" / "vendorx" / "avr"
    platform.mkdir(parents=True)
    uno = properties.subtree(properties.load(PLATFORM / "boards.txt"), "uno")
    uno.update({"name": "VendorX Pro", "build.core": "arduino:arduino", "build.variant": "arduino:standard"})
    (platform / "boards.txt").write_text("".join(f"pro.{key}={value}\n" for key, value in uno.items()))
    (platform / "platform.txt").write_text(VENDOR_PLATFORM)


@needs_toolchain
def test_a_platform_using_anothers_core_runs_its_hooks_and_objcopy_recipes(tmp_path, big_build):
    sketchbook = tmp_path / "Arduino"
    _vendor_platform(sketchbook)
    generated = tmp_path / "sketches" / "Generated"
    generated.mkdir(parents=True)
    (generated / "Generated.ino").write_text('#include "generated.h"\nint answer = GENERATED;\nvoid setup() {}\n'
                                             "void loop() {}\n")
    env = {"ARDUINO_DIRECTORIES_USER": str(sketchbook)}
    out, proc = _build(tmp_path, "--board", "vendorx:avr:pro", env=env, sketches=SKETCHES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _same_firmware(out, big_build)  # arduino:avr's recipes and core, the Uno's flags: the Uno's firmware
    for name in SKETCHES:
        build = out / "sketches" / name / "build"
        assert (build / "firmware.progmem.bin").stat().st_size > 0
        assert (build / "postlink.txt").read_text() == "postlink\n"
        assert (build / "sketch_path.txt").read_text() == f"{_example(name)} {_example(name)}\n"
    proc = run_cli("compile-many", "--board", "vendorx:avr:pro", "-o", str(tmp_path / "gen-out"), str(generated))
    assert proc.returncode == 2  # without the sketchbook there is no vendorx platform
    os.environ["ARDUINO_DIRECTORIES_USER"], saved = str(sketchbook), os.environ["ARDUINO_DIRECTORIES_USER"]
    try:
        proc = run_cli("compile-many", "--board", "vendorx:avr:pro", "-o", str(tmp_path / "gen-out"), str(generated))
    finally:
        os.environ["ARDUINO_DIRECTORIES_USER"] = saved
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the header the sketch includes came from the hook


@needs_toolchain
def test_boards_lists_every_installed_board_with_its_fqbn_and_menus(tmp_path):
    sketchbook = tmp_path / "Arduino"
    _vendor_platform(sketchbook)
    os.environ["ARDUINO_DIRECTORIES_USER"], saved = str(sketchbook), os.environ["ARDUINO_DIRECTORIES_USER"]
    try:
        listed = json.loads(run_cli("boards", "--json").stdout)
    finally:
        os.environ["ARDUINO_DIRECTORIES_USER"] = saved
    by_fqbn = {row["fqbn"]: row for row in listed}
    assert by_fqbn["vendorx:avr:pro"]["name"] == "VendorX Pro" and by_fqbn["vendorx:avr:pro"]["origin"] == "sketchbook"
    assert by_fqbn["arduino:avr:mega"]["menus"] == {"cpu": ["atmega2560", "atmega1280"]}


# the rules, without a toolchain ----------------------------------------------------------------------------

def _platform_at(root: Path, rel: str, version: str = "1.0.0") -> None:
    folder = root / rel
    folder.mkdir(parents=True)
    (folder / "boards.txt").write_text("b.name=B\n")
    (folder / "platform.txt").write_text(f"version={version}\n")


def test_the_install_a_build_takes_follows_arduino_cli_after_the_named_folders(tmp_path):
    _platform_at(tmp_path, "data/packages/acme/hardware/avr/1.2.0")
    _platform_at(tmp_path, "data/packages/acme/hardware/avr/1.10.0")
    _platform_at(tmp_path, "user/hardware/acme/avr")
    _platform_at(tmp_path, "debian/acme/avr")
    _platform_at(tmp_path, "named/acme/avr")
    dirs = installs.Directories(data=str(tmp_path / "data"), user=str(tmp_path / "user"), system=(str(tmp_path / "debian"),))
    found = installs.platforms(dirs)[("acme", "avr")]
    # Boards Manager releases, newest first, before the sketchbook (arduino-cli's GetInstalledPlatformRelease).
    assert [(p.origin, p.version) for p in found] == [
        (installs.Origin.BOARDS_MANAGER, "1.10.0"), (installs.Origin.BOARDS_MANAGER, "1.2.0"),
        (installs.Origin.SKETCHBOOK, "1.0.0"), (installs.Origin.DEBIAN, "1.0.0")]
    named = installs.Directories(data=dirs.data, user=dirs.user, system=dirs.system,
                                 hardware=(str(tmp_path / "named"),))
    assert installs.platforms(named)[("acme", "avr")][0].origin == installs.Origin.HARDWARE_OPTION


def test_tool_paths_take_the_required_release_else_the_best_installed():
    board = installs.Platform(vendor="acme", arch="avr", path="/p", origin=installs.Origin.BOARDS_MANAGER,
                              tools=(installs.ToolDependency("arduino", "avr-gcc", "7.3.0"),))
    tools = [installs.Tool("arduino", "avr-gcc", "7.3.0", "/t/gcc7"), installs.Tool("arduino", "avr-gcc", "9.1.0", "/t/gcc9"),
             installs.Tool("other", "avrdude", "8.0", "/t/other-dude"), installs.Tool("acme", "avrdude", "6.3", "/t/acme-dude")]
    props = installs.tool_properties(board, board, tools)
    assert props["runtime.tools.avr-gcc.path"] == "/t/gcc7"  # required, though not the newest
    assert props["runtime.tools.avr-gcc-9.1.0.path"] == "/t/gcc9"
    assert props["runtime.tools.avrdude.path"] == "/t/acme-dude"  # the platform's own packager first


def test_keys_for_this_system_replace_their_plain_key():
    props = properties.parse("tools.x.cmd=x.exe\ntools.x.cmd.linux=x\ntools.x.cmd.windows=x.exe\n")
    assert props["tools.x.cmd"] == "x"


def test_a_value_is_read_expanded():
    props = {"compiler.path": "{runtime.tools.avr-gcc.path}/bin/", "runtime.tools.avr-gcc.path": "/opt/gcc",
             "ltoarcmd": "avr-gcc-ar", "compiler.ar.cmd": "{ltoarcmd}"}
    from fbuild_graph.arduino import toolchain

    assert toolchain.compiler(props, "ar") == "/opt/gcc/bin/avr-gcc-ar"
