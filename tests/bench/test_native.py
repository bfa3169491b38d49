"""bench.native's charging of py-spy samples: the figures that say the throughput goals
are out of this design's reach rest on it, so a sample must go to the library doing the
work, not to the glue that called it, nor the other way round."""
from pathlib import Path

from bench.native import PYTHON, charge, read_shares

ROOT = "0x7fd003c4524a (libc.so.6);<module> (run.py:19)"
WKB = (
    ";meter_events (bench/native.py:150);Meter.apply (aggregates/meter.py:193)"
    ";to_wkb (shapely/io.py:195)"
    ";ufunc_generic_fastcall (numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so)"
    ";to_wkb_func (shapely/lib.cpython-311-x86_64-linux-gnu.so)"
    ";GEOSWKBWriter_write_r (libgeos_c-ac38a227.so.1.20.5)"
    ";geos::io::WKBWriter::writePolygon (libgeos-d1e818bb.so.3.14.1)"
    ";operator new (libstdc++.so.6.0.30);malloc (libc.so.6)"
)
DISPATCH = (
    ";meter_events (bench/native.py:150);to_wkb (shapely/io.py:195)"
    ";ufunc_generic_fastcall (numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so)"
)
RTREE = (
    ";engine_workload.<locals>.engine_events (bench/native.py:130)"
    ";Index.insert (rtree/index.py:422);ffi_call (libffi.so.8.1.2)"
    ";Index_InsertData (libspatialindex_c-1a2b.so);malloc (libc.so.6)"
)
AREA = (
    ";meter_events (bench/native.py:150);_ring_area (aggregates/area.py:106)"
    ";__pyx_pw_Geod__polygon_area_perimeter (pyproj/_geod.cpython-311-x86_64-linux-gnu.so)"
    ";geod_polygon_compute (libproj-1eb8c554.so.25.9.5.1)"
)
STORE = ";meter_events (bench/native.py:150);Rdict.get (rocksdict/rocksdict.cpython-311.so)"
SETUP = ";make_stream (bench/engine.py:60);difference (shapely/set_operations.py:38)" \
        ";GEOSDifference_r (libgeos_c-ac38a227.so.1.20.5)"


def test_a_sample_goes_to_the_first_library_from_the_root() -> None:
    assert charge(ROOT + WKB) == "GEOS"  # not libc, whose malloc GEOS called
    assert charge(ROOT + RTREE) == "libspatialindex"  # not libffi, ctypes' glue
    assert charge(ROOT + AREA) == "GeographicLib (PROJ)"
    assert charge(ROOT + STORE) == "RocksDB (rocksdict)"


def test_dispatch_that_never_reaches_a_library_is_python() -> None:
    assert charge(ROOT + DISPATCH) == PYTHON


def test_only_the_workload_s_samples_count(tmp_path: Path) -> None:
    raw = tmp_path / "samples.raw"
    raw.write_text("\n".join([
        f"{ROOT}{WKB} 3", f"{ROOT}{DISPATCH} 2", f"{ROOT}{SETUP} 50", f"{ROOT}{RTREE} 7",
    ]) + "\n")
    meter = read_shares(raw, "meter_events")
    assert meter.counts == {"GEOS": 3, PYTHON: 2}
    assert meter.libraries == 3 / 5
    engine = read_shares(raw, "engine_events")  # a nested function, as py-spy names it
    assert engine.counts == {"libspatialindex": 7}
