"""Programs that are not valid ELF executables: run-elf answers `run-elf: cannot load PROGRAM: REASON`
with exit status 126 (127 for a program that does not exist), maps and runs nothing, and never
prints a Python traceback or hangs.

The corpus in tests/bad_elves/ is written by tests/gen_bad_elves.py (one file per malformation,
MANIFEST.txt gives the reason each must produce). A hypothesis test damages the header and
program headers of samples/bin/hello-musl at random and checks that run-elf always ends with a
clean message or an ordinary guest outcome, within a time bound.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from loader.elf import LoadError
from osmodel.kernel import Config, Kernel

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "bad_elves"
HELLO_MUSL = ROOT / "samples" / "bin" / "hello-musl"
EXIT_CANNOT_LOAD = 126
EXIT_NOT_FOUND = 127
EXIT_INTERNAL = 70
EXIT_STOPPED = 124


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_bad_elves", ROOT / "tests" / "gen_bad_elves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
MANIFEST = gen.read_manifest(str(CORPUS / "MANIFEST.txt"))


def run_elf_cli(args, *, cwd=ROOT, timeout=30.0, env=None) -> subprocess.CompletedProcess:
    """`python -m osmodel ARGS` with this checkout first on the path; a hang is a test failure."""
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "PYTHONPATH": str(ROOT)}
    environ.update(env or {})
    try:
        return subprocess.run([sys.executable, "-m", "osmodel", *map(str, args)], cwd=str(cwd), env=environ,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"run-elf hung: no exit within {timeout} s: {args}\nstderr: {e.stderr!r}")


def assert_cannot_load(proc: subprocess.CompletedProcess, shown: str, reason: str = "") -> str:
    """Exit status 126 and exactly one stderr line `run-elf: cannot load SHOWN: ...REASON...`; the reason."""
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert proc.returncode == EXIT_CANNOT_LOAD, (proc.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    prefix = f"run-elf: cannot load {shown}: "
    assert lines[0].startswith(prefix), lines[0]
    why = lines[0][len(prefix):]
    assert why.strip(), lines[0]
    assert reason in why, (reason, lines[0])
    assert proc.stdout == b"", "nothing may run"
    return why


# -- the corpus --------------------------------------------------------------------------------------------

def test_manifest_names_every_file_of_the_corpus():
    files = {p.name for p in CORPUS.glob("*.elf")}
    assert files == set(MANIFEST)
    assert all(MANIFEST.values())
    assert sum((CORPUS / n).stat().st_size for n in files) < 200_000


def test_corpus_is_what_the_generator_writes(tmp_path):
    gen.write_corpus(str(tmp_path))
    for name in list(MANIFEST) + ["MANIFEST.txt"]:
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), \
            f"{name} is stale: run python tests/gen_bad_elves.py"
    assert {p.name for p in tmp_path.iterdir()} == set(MANIFEST) | {"MANIFEST.txt"}


def test_every_listed_malformation_has_a_case():
    """The issue's list, each with at least one file."""
    names = " ".join(MANIFEST)
    for case in ["not_elf", "truncated_header", "truncated_phdrs", "wrong_class", "wrong_machine",
                 "wrong_endianness", "wrong_osabi", "no_pt_load", "segment_past_eof", "filesz_gt_memsz",
                 "segments_overlap", "wraps", "noncanonical", "kernel", "direct_map", "exceeds_phys_mem",
                 "entry_outside", "interp_missing"]:
        assert case in names, case


@pytest.mark.parametrize("name, data, expected", [
    ("minimal", gen.minimal, (b"", 42)),
    ("hello-musl cut after its last PT_LOAD", lambda: bytes(gen.sample_bytes()), (b"hello, world\n", 0)),
])
def test_the_unmutated_bases_run(tmp_path, name, data, expected):
    """Every case is one mutation of these, so each failure is that mutation's."""
    path = tmp_path / "prog"
    path.write_bytes(data())
    path.chmod(0o755)
    native = subprocess.run([str(path)], capture_output=True, timeout=10)
    assert (native.stdout, native.returncode) == expected
    proc = run_elf_cli([path])
    assert (proc.stdout, proc.returncode, proc.stderr) == (*expected, b"")


@lru_cache(maxsize=1)
def corpus_results() -> dict[str, subprocess.CompletedProcess]:
    """Every corpus file through the CLI, run concurrently once for all the parametrized tests."""
    def one(name):
        return name, run_elf_cli([f"tests/bad_elves/{name}"])
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(one, sorted(MANIFEST)))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_bad_elf_cannot_be_loaded(name):
    assert_cannot_load(corpus_results()[name], f"tests/bad_elves/{name}", MANIFEST[name])



@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_bad_elf_maps_nothing(name):
    """Through the API: LoadError with the reason, no process, not one frame more than at boot."""
    kernel = Kernel(Config(phys_mem=64 << 20, stderr=io.StringIO()))
    boot = kernel.ram.used_frames
    with pytest.raises(LoadError) as info:
        kernel.spawn(str(CORPUS / name), [name.encode()], [])
    assert MANIFEST[name] in str(info.value)
    assert "\n" not in str(info.value)
    assert kernel.processes == {}
    assert kernel.ram.used_frames == boot


# -- other things that are not programs -----------------------------------------------------------------------

def test_missing_program_is_127(tmp_path):
    missing = tmp_path / "no-such-program"
    proc = run_elf_cli([missing])
    err = proc.stderr.decode()
    assert proc.returncode == EXIT_NOT_FOUND, err
    assert err.splitlines() == [f"run-elf: {missing}: No such file or directory"]
    assert "Traceback" not in err and proc.stdout == b""


def test_program_not_in_path_is_127():
    proc = run_elf_cli(["no-such-program-anywhere-in-path"])
    assert proc.returncode == EXIT_NOT_FOUND
    assert len(proc.stderr.decode().splitlines()) == 1


def test_directory_is_126(tmp_path):
    assert_cannot_load(run_elf_cli([tmp_path]), str(tmp_path))


def test_empty_file_is_126(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    path.chmod(0o755)
    assert_cannot_load(run_elf_cli([path]), str(path), "not an ELF file")


def test_text_file_is_126():
    assert_cannot_load(run_elf_cli(["README.md"]), "README.md", "not an ELF file")


def test_empty_shebang_is_126(tmp_path):
    """A #! line naming no interpreter cannot run (execve's ENOEXEC)."""
    path = tmp_path / "script.sh"
    path.write_text("#!\necho should not run\n")
    path.chmod(0o755)
    assert_cannot_load(run_elf_cli([path]), str(path), "empty #! line")


def test_script_whose_interpreter_is_not_elf_is_126(tmp_path):
    """A #! script runs through its interpreter, which must itself load (here: a text file)."""
    interp = tmp_path / "interp"
    interp.write_text("just text\n")
    interp.chmod(0o755)
    path = tmp_path / "script.sh"
    path.write_text(f"#!{interp}\n")
    path.chmod(0o755)
    assert_cannot_load(run_elf_cli([path]), str(path), "not an ELF file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_file_is_126(tmp_path):
    path = tmp_path / "secret"
    shutil.copy(HELLO_MUSL, path)
    path.chmod(0o111)
    assert_cannot_load(run_elf_cli([path]), str(path), "Permission denied")


def test_dev_null_is_126():
    # /dev/null is a character device: refused before anything is read from it.
    assert_cannot_load(run_elf_cli(["/dev/null"]), "/dev/null", "not a regular file")


def test_endless_device_is_126():
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "osmodel", "--phys-mem", "16M", "/dev/zero"], cwd=str(ROOT),
                          env=environ, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, preexec_fn=limit)
    assert_cannot_load(proc, "/dev/zero")


def test_fifo_is_126_without_hanging(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    assert_cannot_load(run_elf_cli([path], timeout=5), str(path))


# -- random damage to a real header (hypothesis) ---------------------------------------------------------------

SAMPLE = HELLO_MUSL.read_bytes()
PHNUM = struct.unpack_from("<H", SAMPLE, 56)[0]
HEAD = 64 + 56 * PHNUM                       # the ELF header and program header table of the sample
EHDR_SIZE_CUT = 16                           # cuts shorter than e_ident are all "not an ELF file"

# (name, offset, size) of every field in the header and the program headers.
FIELDS = [("e_ident[%d]" % i, i, 1) for i in range(4, 16)] + [
    ("e_type", 16, 2), ("e_machine", 18, 2), ("e_version", 20, 4), ("e_entry", 24, 8), ("e_phoff", 32, 8),
    ("e_shoff", 40, 8), ("e_flags", 48, 4), ("e_ehsize", 52, 2), ("e_phentsize", 54, 2), ("e_phnum", 56, 2),
    ("e_shentsize", 58, 2), ("e_shnum", 60, 2), ("e_shstrndx", 62, 2)]
for _i in range(PHNUM):
    _base = 64 + 56 * _i
    FIELDS += [(f"phdr[{_i}].{n}", _base + off, size) for n, off, size in [
        ("p_type", 0, 4), ("p_flags", 4, 4), ("p_offset", 8, 8), ("p_vaddr", 16, 8), ("p_paddr", 24, 8),
        ("p_filesz", 32, 8), ("p_memsz", 40, 8), ("p_align", 48, 8)]]

INTERESTING = [0, 1, 2, 3, 4, 6, 7, 0x3E, 0x38, 0x40, 0xFFF, 0x1000, 0x1001, 0x10000, 0x400000, 0x401000,
               0x6474E551, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, 1 << 40, (1 << 47) - 0x1000, 1 << 47,
               0x7FFF_FFFF_F000, 0xFFFF_8000_0000_0000, 0xFFFF_8880_0000_0000, 0xFFFF_FFFF_8100_0000,
               (1 << 63) - 1, 1 << 63, (1 << 64) - 0x1000, (1 << 64) - 1]

field_op = st.tuples(st.just("field"), st.sampled_from(FIELDS),
                     st.one_of(st.sampled_from(INTERESTING), st.integers(0, (1 << 64) - 1),
                               st.integers(-0x2000, 0x2000)))
flip_op = st.tuples(st.just("flip"), st.integers(0, HEAD - 1), st.integers(0, 7))
byte_op = st.tuples(st.just("byte"), st.integers(0, HEAD - 1), st.integers(0, 255))
cut_op = st.tuples(st.just("cut"), st.integers(EHDR_SIZE_CUT, len(SAMPLE)), st.just(0))
mutations = st.lists(st.one_of(field_op, field_op, flip_op, byte_op, cut_op), min_size=1, max_size=4)


def mutate(ops) -> bytes:
    """Apply the ops to the sample: set a field (a small value is added to the old one), flip a bit, set a byte, cut."""
    data = bytearray(SAMPLE)
    for op, where, value in ops:
        if op == "field":
            _name, off, size = where
            if off + size > len(data):
                continue
            mask = (1 << (8 * size)) - 1
            old = int.from_bytes(data[off:off + size], "little")
            new = (old + value) & mask if -0x2000 <= value <= 0x2000 and value not in INTERESTING else value & mask
            data[off:off + size] = new.to_bytes(size, "little")
        elif op == "flip" and where < len(data):
            data[where] ^= 1 << value
        elif op == "byte" and where < len(data):
            data[where] = value
        elif op == "cut":
            del data[where:]
    return bytes(data)


def check_outcome(returncode: int, stdout: bytes, stderr: str, shown: str) -> None:
    """A clean refusal (126 and one `cannot load` line), or an ordinary guest outcome; never an internal error."""
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr and returncode != EXIT_INTERNAL, f"run-elf failed (a bug): {stderr}"
    assert 0 <= returncode <= 255, returncode
    lines = stderr.splitlines()
    refusals = [ln for ln in lines if ln.startswith("run-elf: cannot load ")]
    if refusals:
        assert returncode == EXIT_CANNOT_LOAD and len(lines) == 1, stderr
        assert lines[0].startswith(f"run-elf: cannot load {shown}: ") and len(lines[0]) > len(shown) + 23, stderr
        assert stdout == b""
        return
    ours = [ln for ln in lines if ln.startswith("run-elf: ")]
    if returncode == EXIT_STOPPED and any("limit" in ln for ln in ours):
        return
    if returncode > 128:
        assert any("killed by" in ln or "out of memory" in ln or "deadlock" in ln for ln in ours), stderr
        return
    assert returncode not in (EXIT_NOT_FOUND,), stderr
    assert all(" killed by " not in ln for ln in ours), stderr


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],    # no shrinking: each example is a process (~0.3 s)
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=mutations)
def test_damaged_headers_end_cleanly_cli(tmp_path, ops):
    path = tmp_path / "damaged"
    path.write_bytes(mutate(ops))
    path.chmod(0o755)
    proc = run_elf_cli(["--timeout", "10", "--phys-mem", "64M", path], cwd=tmp_path, timeout=30)
    check_outcome(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"), str(path))


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=mutations)
def test_damaged_headers_end_cleanly_api(tmp_path, ops):
    """The same through the Python API, in-process: spawn raises only LoadError, run returns a status.

    The guest is confined to tmp_path (Config.root) and bounded by Config.timeout.
    """
    guest_root = tmp_path / "root"
    guest_root.mkdir(exist_ok=True)
    (guest_root / "damaged").write_bytes(mutate(ops))
    (guest_root / "damaged").chmod(0o755)
    err = io.StringIO()
    kernel = Kernel(Config(phys_mem=64 << 20, timeout=10, root=str(guest_root), stderr=err))
    boot = kernel.ram.used_frames
    with open(os.devnull, "rb") as null_in, open(tmp_path / "out", "w+b") as out:
        try:
            kernel.spawn("/damaged", [b"/damaged"], [b"LC_ALL=C"], stdio=(null_in.fileno(), out.fileno(),
                                                                         out.fileno()))
        except LoadError as e:
            assert str(e) and "\n" not in str(e)
            assert "malformed ELF file" not in str(e), f"the loader crashed: {e!r} from {e.__cause__!r}"
            return
        status = kernel.run()
    assert 0 <= status <= 255
    assert status != EXIT_INTERNAL or "internal error" not in err.getvalue(), err.getvalue()
    assert kernel.processes == {} and kernel.ram.used_frames == boot
