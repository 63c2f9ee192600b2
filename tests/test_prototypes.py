import subprocess
from pathlib import Path

import pytest

from fbuild_graph.arduino.prototypes import add_prototypes

AVR = Path("/usr/share/arduino/hardware/arduino/avr")
AVR_GXX = Path("/usr/bin/avr-g++")
LIBRARIES = ("EEPROM", "SPI", "SoftwareSerial", "Wire")
EXAMPLES = sorted(AVR.glob("libraries/*/examples/*/*.ino"))


def merge(*files: tuple[str, str]) -> str:
    """The merged sketch as the Arduino IDE builds it from (path, text) pairs, main .ino first."""
    return "#include <Arduino.h>\n" + "".join(f'#line 1 "{path}"\n{text}' for path, text in files)


def test_function_used_before_definition_gets_prototype():
    merged = merge(("/s/s.ino", "void setup() {\n  blink(13);\n}\n\nvoid blink(int pin) {\n}\n"))
    assert add_prototypes(merged) == (
        "#include <Arduino.h>\n"
        '#line 1 "/s/s.ino"\n'
        '#line 1 "/s/s.ino"\n'
        "void setup();\n"
        '#line 5 "/s/s.ino"\n'
        "void blink(int pin);\n"
        '#line 1 "/s/s.ino"\n'
        "void setup() {\n  blink(13);\n}\n\nvoid blink(int pin) {\n}\n"
    )


def test_prototypes_name_the_file_and_line_of_each_definition():
    merged = merge(
        ("/s/main.ino", "int v;\nvoid setup() {\n  helper(1, 2);\n}\nvoid loop() {}\n"),
        ("/s/b.ino", "// helpers\n\nstatic int\nhelper(int a,\n       int b) {\n  return a;\n}\n"),
    )
    assert add_prototypes(merged) == (
        "#include <Arduino.h>\n"
        '#line 1 "/s/main.ino"\n'
        "int v;\n"
        '#line 2 "/s/main.ino"\n'
        "void setup();\n"
        '#line 5 "/s/main.ino"\n'
        "void loop();\n"
        '#line 3 "/s/b.ino"\n'
        "static int helper(int a, int b);\n"
        '#line 2 "/s/main.ino"\n'
        "void setup() {\n  helper(1, 2);\n}\nvoid loop() {}\n"
        '#line 1 "/s/b.ino"\n'
        "// helpers\n\nstatic int\nhelper(int a,\n       int b) {\n  return a;\n}\n"
    )


def test_multiline_signature_becomes_one_line_without_comments():
    text = "static inline\nunsigned long\nscale(int a, // raw value\n      int b /* divisor */)\n{\n  return a / b;\n}\n"
    out = add_prototypes(merge(("/s/s.ino", text)))
    assert "static inline unsigned long scale(int a, int b );\n" in out


def test_isr_macro_gets_no_prototype():
    merged = merge(("/s/s.ino", "ISR(TIMER1_COMPA_vect) {\n  count++;\n}\n"))
    assert add_prototypes(merged) == merged


def test_isr_macro_is_skipped_but_functions_around_it_are_not():
    out = add_prototypes(merge(("/s/s.ino", "ISR(TIMER1_COMPA_vect) { tick(); }\nvoid tick() {}\n")))
    assert "ISR(TIMER1_COMPA_vect);" not in out
    assert '#line 2 "/s/s.ino"\nvoid tick();\n' in out


def test_qualified_operator_and_template_definitions_get_no_prototype():
    text = (
        "struct Foo { void bar(); };\n"
        "void Foo::bar() {}\n"
        "bool operator==(const Foo&, const Foo&) { return true; }\n"
        "template <class T> T twice(T x) { return x + x; }\n"
    )
    merged = merge(("/s/s.ino", text))
    assert add_prototypes(merged) == merged


def test_pointer_and_reference_return_types_get_prototypes():
    out = add_prototypes(merge(("/s/s.ino", "char *name() { return 0; }\nint &slot() { static int s; return s; }\n")))
    assert "\nchar *name();\n" in out
    assert "\nint &slot();\n" in out


def test_existing_prototype_is_not_duplicated():
    text = "int answer();\n\nvoid setup() {\n  answer();\n}\n\nint answer() { return 42; }\n"
    out = add_prototypes(merge(("/s/s.ino", text)))
    assert out.count("int answer()") == 2  # the author's prototype and the definition
    assert '#line 3 "/s/s.ino"\nvoid setup();\n#line 3 "/s/s.ino"\nvoid setup() {' in out


def test_function_with_default_arguments_gets_no_prototype():
    merged = merge(("/s/s.ino", "void beep(int times = 1) {}\n"))
    assert add_prototypes(merged) == merged


def test_no_functions_leaves_text_unchanged():
    merged = merge(("/s/s.ino", "// just data\nconst int table[] = {1, 2, 3};\n"))
    assert add_prototypes(merged) == merged


def test_definition_sharing_a_line_with_earlier_code():
    out = add_prototypes(merge(("/s/s.ino", "/* pins\n */ void setup() {}\n")))
    assert out.endswith('/* pins\n */ \n#line 2 "/s/s.ino"\nvoid setup();\n#line 2 "/s/s.ino"\nvoid setup() {}\n')


def test_escaped_file_name_is_kept_verbatim():
    out = add_prototypes(merge(("C:\\\\sk\\\\s.ino", "void setup() {}\n")))
    assert '#line 1 "C:\\\\sk\\\\s.ino"\nvoid setup();\n' in out


# --- integration with the real AVR toolchain ---------------------------------------

needs_avr = pytest.mark.skipif(not AVR_GXX.exists(), reason="avr-g++ not installed")


def syntax_check(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cpp = tmp_path / "sketch.ino.cpp"
    cpp.write_text(source)
    command = [
        str(AVR_GXX), "-fsyntax-only", "-x", "c++", "-mmcu=atmega328p", "-DF_CPU=16000000L",
        "-DARDUINO=10819", "-DARDUINO_AVR_UNO", "-DARDUINO_ARCH_AVR", "-DDECIMAL_DIG=__DECIMAL_DIG__",
        "-std=gnu++11", "-fpermissive", "-w",
        f"-I{AVR}/cores/arduino", f"-I{AVR}/variants/standard",
        *(f"-I{AVR}/libraries/{library}/src" for library in LIBRARIES),
        str(cpp),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True)


def merge_example(ino: Path) -> str:
    return merge((str(ino), ino.read_text()))


@needs_avr
def test_all_library_examples_are_present():
    assert len(EXAMPLES) == 19


@needs_avr
@pytest.mark.parametrize("ino", EXAMPLES, ids=lambda ino: ino.stem)
def test_library_example_compiles(ino: Path, tmp_path: Path):
    result = syntax_check(add_prototypes(merge_example(ino)), tmp_path)
    assert result.returncode == 0, result.stderr


@needs_avr
def test_some_library_example_needs_prototypes(tmp_path: Path):
    failing = [ino.stem for ino in EXAMPLES if syntax_check(merge_example(ino), tmp_path).returncode != 0]
    assert "eeprom_crc" in failing


@needs_avr
def test_diagnostics_point_into_the_ino_files(tmp_path: Path):
    main, helpers = tmp_path / "main.ino", tmp_path / "helpers.ino"
    merged = merge(
        (str(main), "void setup() {\n  blink(13);\n  undefined_in_main();\n}\nvoid loop() {}\n"),
        (str(helpers), "// helpers\n\nvoid blink(int pin) {\n  undefined_in_helpers();\n}\n"),
    )
    stderr = syntax_check(add_prototypes(merged), tmp_path).stderr
    assert f"{main}:3:" in stderr
    assert f"{helpers}:4:" in stderr
    assert stderr.count("error:") == 2  # blink() itself was declared by its prototype
