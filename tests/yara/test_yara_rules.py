"""Every rule hits its positive case and no real clean file; the scanner's errors and cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpforensics.errors import UsageError
from hpforensics.pe.structures import REDIRECT_NEAR
from hpforensics.yarascan import load_rules, scan_paths

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
POSITIVE = RULES / "tests" / "positive"
SAMPLES_PE = REPO / "samples" / "pe"

# Rule → the files it must hit. Hook shapes: the byte cases in rules/tests/positive; hotpatch
# image rules: the generated patch images; the redirect rule also: a memory image with patch 1.
POSITIVES: dict[str, list[Path]] = {
    "hotpatch_image_load_config": [SAMPLES_PE / "hpbase_hp1.dll", SAMPLES_PE / "hpbase_hp2.dll"],
    # the HPAT lives in memory after the base image (docs/hotpatch-format.md), not in the file
    "hotpatch_hpat_stubs": [SAMPLES_PE / "mem" / "hp1.hpat@7ffb12346000.bin",
                            SAMPLES_PE / "mem" / "kernel_hp1.hpat@fffff80612345000.bin"],
    "hotpatch_redirect_e9_ebf9": [POSITIVE / "hotpatch_redirect_e9_ebf9.bin",
                                  SAMPLES_PE / "mem" / "hp1.hpbase.dll@7ffb12340000.bin"],
    "hotpatch_redirect_ff25_ebf8": [POSITIVE / "hotpatch_redirect_ff25_ebf8.bin"],
    "hook_mov_rax_jmp_rax": [POSITIVE / "hook_mov_rax_jmp_rax.bin"],
    "hook_jmp_rip_absolute": [POSITIVE / "hook_jmp_rip_absolute.bin",
                              POSITIVE / "hook_jmp_rip_absolute_kernel.bin"],
    "hook_push_ret": [POSITIVE / "hook_push_ret.bin"],
    "hook_amsi_scanbuffer_patch": [POSITIVE / "hook_amsi_scanbuffer_patch.bin"],
    "hook_etw_eventwrite_patch": [POSITIVE / "hook_etw_eventwrite_patch.bin"],
}


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory):
    import os

    os.environ["HPF_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    return load_rules([RULES])


def rule_names(ruleset) -> set[str]:
    return {r.identifier for r in ruleset.rules}


def test_every_rule_has_a_positive_case(ruleset):
    assert rule_names(ruleset) == set(POSITIVES)


@pytest.mark.parametrize("rule", sorted(POSITIVES))
def test_rule_hits_its_positive_case(ruleset, rule):
    for path in POSITIVES[rule]:
        hits = {h.rule for h in scan_paths(ruleset, [path])}
        assert rule in hits, f"{rule} did not hit {path.name}"


def test_positive_cases_are_what_the_builder_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_cases", RULES / "tests" / "build_cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, data in mod.cases().items():
        assert (POSITIVE / f"{name}.bin").read_bytes() == data


def test_no_rule_hits_real_clean_files(ruleset, real_pe_files):
    hits = list(scan_paths(ruleset, real_pe_files))
    assert hits == [], [(h.module, h.rule, hex(h.address)) for h in hits]


def test_hook_hit_carries_offset_and_bytes(ruleset):
    path = POSITIVE / "hook_mov_rax_jmp_rax.bin"
    (hit,) = [h for h in scan_paths(ruleset, [path]) if h.rule == "hook_mov_rax_jmp_rax"]
    assert hit.address == 16  # after the int3 padding
    assert hit.matched == path.read_bytes()[16:28]
    assert hit.namespace == "hooks" and "hook" in hit.tags


def test_bad_rule_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yar"
    bad.write_text("rule ok { condition: true }\n\nrule broken {\n  condition: nosuchthing\n}\n")
    with pytest.raises(UsageError) as exc:
        load_rules([bad], use_cache=False)
    assert str(exc.value).startswith(f"{bad} line 4:")


def test_compiled_rules_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("HPF_CACHE_DIR", str(tmp_path))
    rules = tmp_path / "r.yar"
    rules.write_text('rule a { strings: $a = "abc" condition: $a }')
    first = load_rules([rules])
    assert (tmp_path / "yara" / f"{first.digest}.yarc").is_file()
    again = load_rules([rules])
    assert again.digest == first.digest
    rules.write_text('rule b { strings: $b = "abd" condition: $b }')
    assert load_rules([rules]).digest != first.digest


def test_cli_scan_json(cli, tmp_path):
    proc = cli("yara", RULES, POSITIVE, "--format", "json", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["rule"] for r in rows} >= {"hook_amsi_scanbuffer_patch", "hook_push_ret"}


def test_cli_bad_rules_exit_2_one_line(cli, tmp_path, shared_data):
    bad = tmp_path / "bad.yar"
    bad.write_text("rule x {\n condition: foo\n}\n")
    proc = cli("yara", bad, shared_data / "pe")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f'hpforensics: error: {bad} line 2: undefined identifier "foo"'
    ]
    assert proc.stdout == ""


def test_scan_changed_reads_only_changed_ranges_with_context(ruleset):
    from hpforensics.model import Finding, Verdict
    from hpforensics.space import BytesAddressSpace, MappedImage
    from hpforensics.yarascan import scan_changed

    base = 0x7FF6_0000_0000
    image = bytearray(0x3000)
    amsi = (POSITIVE / "hook_amsi_scanbuffer_patch.bin").read_bytes()
    image[0x1800:0x1800 + len(amsi)] = amsi  # a change the engine reported
    image[0x2800:0x2800 + len(amsi)] = amsi  # the same bytes in an unchanged range: not scanned
    space = BytesAddressSpace([(MappedImage(base, len(image), "C:\\x\\amsi.dll", "amsi.dll"),
                                bytes(image))], source="test", pid=42, process="p.exe")
    finding = Finding("test", 42, "p.exe", "amsi.dll", "", base, base + 0x1810, 0x1810, 6,
                      Verdict.UNEXPLAINED, "inline patch")
    hits = scan_changed(ruleset, space, [finding])
    assert [(h.rule, h.address, h.verdict, h.pid) for h in hits] == [
        ("hook_amsi_scanbuffer_patch", base + 0x1810, "unexplained", 42)
    ]


def test_hit_takes_the_verdict_of_its_own_range_not_its_neighbours(ruleset):
    from hpforensics.model import Finding, Verdict
    from hpforensics.space import BytesAddressSpace, MappedImage
    from hpforensics.yarascan import scan_changed

    base = 0x7FF6_0000_0000
    image = bytearray(b"\xcc" * 0x2000)
    redirect = REDIRECT_NEAR.encode(0xFF0)
    amsi = b"\xb8\x57\x00\x07\x80\xc3"
    image[0x100B:0x1012] = redirect  # a genuine hotpatch
    image[0x1020:0x1026] = amsi  # an attacker's patch 14 bytes later: windows merge
    space = BytesAddressSpace([(MappedImage(base, len(image), "x.dll", "x.dll"), bytes(image))])
    findings = [
        Finding("t", 1, "p", "x.dll", "", base, base + 0x100B, 0x100B, 7, Verdict.HOTPATCH, "hp"),
        Finding("t", 1, "p", "x.dll", "", base, base + 0x1020, 0x1020, 6, Verdict.UNEXPLAINED, "x"),
    ]
    got = {(h.rule, h.address - base, h.verdict) for h in scan_changed(ruleset, space, findings)}
    assert got == {
        ("hotpatch_redirect_e9_ebf9", 0x100B, "hotpatch"),
        ("hook_amsi_scanbuffer_patch", 0x1020, "unexplained"),
    }
