"""ME annotation sheets: the real CASME II / SAMM sheets, AU-code parsing, generated CAS(ME)^3 / MMEW / bad sheets,
a generated SMIC tree, the unified CSV and the N2ME summary."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (requirements.txt) reads and writes the xlsx sheets")

from data.annotations import (  # noqa: E402  (after the importorskip above)
    SUMMARY_EMOTIONS,
    AnnotationError,
    AUCode,
    build_me_summary,
    format_aus,
    parse_aus,
    parse_frame,
    read_annotations,
    read_casme2,
    read_casme3,
    read_mmew,
    read_samm,
    read_smic,
    to_rows,
    write_annotation_csv,
)

ANNOTATIONS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "me_annotations"
CASME2_SHEET = ANNOTATIONS / "CASME2-coding-20190701.xlsx"
SAMM_SHEET = ANNOTATIONS / "SAMM_Micro_FACS_Codes_v2.xlsx"


def _real(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"real annotation sheet not found at {path} (CI provides ../shared/data/me_annotations)")
    return path


@pytest.fixture(scope="module")
def casme2() -> list:
    return read_casme2(_real(CASME2_SHEET))


@pytest.fixture(scope="module")
def samm() -> list:
    return read_samm(_real(SAMM_SHEET))


def _by_clip(clips, subject, clip):
    found = [c for c in clips if c.subject == subject and c.clip == clip]
    assert len(found) == 1, f"{subject}/{clip}: {len(found)} rows"
    return found[0]


def write_sheet(path: Path, rows: list[list], title: str = "Sheet1") -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


# ------------------------------------------------------------------------------------------------ real sheets

def test_casme2_sheet(casme2):
    assert len(casme2) == 255  # 255 coded clips below the header; Sheet2/Sheet3 are empty
    assert {c.dataset for c in casme2} == {"casme2"} and {c.fps for c in casme2} == {200}
    assert len({c.subject for c in casme2}) == 26 and all(len(c.subject) == 2 for c in casme2)
    assert len({c.clip_id for c in casme2}) == 255  # Filenames repeat across subjects, the ids do not
    first = casme2[0]
    assert (first.subject, first.clip, first.onset, first.apex, first.offset) == ("01", "EP02_01f", 46, 59, 86)
    assert first.frame_dir == "sub01/EP02_01f" and first.clip_id == "c_sub01_EP02_01f"
    assert first.source.endswith("[Sheet1] row 2")
    assert {c.emotion for c in casme2} == {"happiness", "others", "disgust", "repression", "surprise", "sadness",
                                          "fear"}


def test_casme2_apex_slash_is_none_and_flagged(casme2):
    slash = [c for c in casme2 if c.apex is None]
    assert [(c.subject, c.clip) for c in slash] == [("04", "EP12_01f")]
    clip = slash[0]
    assert (clip.onset, clip.offset) == (261, 321)
    assert clip.problems == ["CASME2-coding-20190701.xlsx[Sheet1] row 31, column 'ApexFrame': missing ('/')"]
    others = [c for c in casme2 if c is not clip]
    assert not any(c.problems for c in others) and not any(c.unparsed for c in casme2)


def test_samm_sheet(samm):
    assert len(samm) == 159  # every row of the MICRO_ONLY sheet below the notes block
    assert samm[0].source == "SAMM_Micro_FACS_Codes_v2.xlsx[MICRO_ONLY] row 15"  # header found on row 14
    assert samm[0].subject == "006" and samm[0].clip_id == "s_006_1_2" and samm[0].frame_dir == "006/006_1_2"
    assert all(len(c.subject) == 3 and c.clip.startswith(c.subject + "_") for c in samm)
    assert len({c.subject for c in samm}) == 29 and len({c.clip_id for c in samm}) == 159
    assert {c.emotion for c in samm} == {"anger", "other", "happiness", "surprise", "contempt", "disgust", "fear",
                                        "sadness"}
    assert all(c.apex is not None for c in samm)


def test_samm_row_numbers_match_the_workbook(samm):
    """The reported row number is the sheet's own row (checked against openpyxl's cell addressing)."""
    sheet = openpyxl.load_workbook(SAMM_SHEET)["MICRO_ONLY"]
    clip = _by_clip(samm, "032", "032_3_1")
    row = int(clip.source.rsplit(" ", 1)[1])
    assert sheet.cell(row=row, column=2).value == "032_3_1"


def test_samm_quirks_are_flagged(samm):
    apex_after = _by_clip(samm, "028", "028_4_1")
    assert apex_after.problems == ["SAMM_Micro_FACS_Codes_v2.xlsx[MICRO_ONLY] row 140: "
                                   "apex 1143 outside [onset, offset] = [1071, 1134]"]
    assert "apex 1930 outside" in _by_clip(samm, "032", "032_3_1").problems[0]
    soft = [c for c in samm if c.unparsed]
    assert [(c.aus_raw, c.unparsed, c.aus) for c in soft] == [("R14+17+soft focus", ["soft focus"], "R14+17")]
    assert "column 'Action Units': unparsed AU token 'soft focus'" in soft[0].problems[0]
    flagged = {c.clip for c in samm if c.problems}
    assert flagged == {"028_4_1", "032_3_1", soft[0].clip}
    uncertain = sorted(c.aus for c in samm if any(code.uncertain for code in c.action_units))
    assert "(A12 or L12)" in uncertain and "(R6 or R12)+R15" in uncertain and "(10A or 10B)" in uncertain


MEGC_GROUND_TRUTH = [  # reference section 6, as the sheets write it (subjects looked up in the sheets)
    ("casme2", "19", "EP01_01f", "12", [12]),
    ("casme2", "17", "EP01_13", "2+5", [2, 5]),
    ("casme2", "01", "EP19_06f", "4+7+L10", [4, 7, 10]),
    ("samm", "022", "022_3_3", "7C+A12B", [7, 12]),
    ("samm", "007", "007_7_1", "5B+24", [5, 24]),
    ("samm", "018", "018_3_1", "A9E+ref(10)", [9, 10]),
]


@pytest.mark.parametrize("dataset,subject,clip,aus,numbers", MEGC_GROUND_TRUTH, ids=[r[2] for r in MEGC_GROUND_TRUTH])
def test_megc2021_clip_au_ground_truth(request, dataset, subject, clip, aus, numbers):
    found = _by_clip(request.getfixturevalue(dataset), subject, clip)
    assert found.aus == aus and found.au_numbers == numbers and not found.problems


def test_megc_clip_codes_in_detail(casme2, samm):
    assert _by_clip(casme2, "01", "EP19_06f").action_units == [AUCode(4), AUCode(7), AUCode(10, side="L")]
    assert _by_clip(samm, "022", "022_3_3").action_units == [AUCode(7, intensity="C"), AUCode(12, "A", "B")]
    assert _by_clip(samm, "018", "018_3_1").action_units == [AUCode(9, "A", "E"), AUCode(10, ref=True)]


def test_read_annotations_detects_real_sheets(tmp_path, casme2, samm):
    assert read_annotations(CASME2_SHEET)[0].dataset == "casme2"  # by file name
    neutral = shutil.copy(SAMM_SHEET, tmp_path / "sheet.xlsx")
    assert len(read_annotations(neutral)) == len(samm) and read_annotations(neutral)[0].dataset == "samm"  # header


def test_summary_of_real_sheets(casme2, samm):
    summary = build_me_summary(casme2 + samm)
    assert tuple(summary) == SUMMARY_EMOTIONS
    counts = {emotion: len(ids) for emotion, ids in summary.items()}
    assert counts == {"anger": 57, "disgust": 72, "fear": 10, "happiness": 58, "sadness": 10, "surprise": 43}
    ids = [i for ids in summary.values() for i in ids]
    assert all(i.startswith(("c_sub", "s_")) for i in ids) and "c_sub19_EP01_01f" in summary["happiness"]
    dropped = {c.emotion for c in casme2 + samm if c.clip_id not in set(ids)}
    assert dropped == {"others", "repression", "other", "contempt"}


# ------------------------------------------------------------------------------------------------ AU codes

@pytest.mark.parametrize("text,expected", [
    ("4+7+L10", "4+7+L10"),
    ("L10+7+4", "4+7+L10"),  # canonical order
    ("R12", "R12"),
    ("A9E", "A9E"),
    ("12+R14A", "12+R14A"),
    ("AU12", "12"),
    ("au4 + au7 + l10", "4+7+L10"),
    ("AU 4, AU 7", "4+7"),
    ("4\uff0c7", "4+7"),  # full-width comma
    ("4\uff0bL10", "4+L10"),  # full-width plus
    ("4\u30017", "4+7"),  # ideographic comma
    ("\uff14\uff0b\uff17", "4+7"),  # full-width digits
    ("12+15 ", "12+15"),
    ("L12 + 61", "L12+61"),
    ("AU4 AU7", "4+7"),
    ("T18+39", "T18+39"),
    (12, "12"),
    (4.0, "4"),
    ("", ""),
    ("/", ""),
    (None, ""),
])
def test_parse_and_format_aus(text, expected):
    codes, unparsed = parse_aus(text)
    assert format_aus(codes) == expected and unparsed == []


def test_au_sides_and_intensities():
    codes, _ = parse_aus("L14+R2B+A1C+T23+B18+43E")
    assert [(c.number, c.side, c.intensity) for c in codes] == [
        (14, "L", None), (2, "R", "B"), (1, "A", "C"), (23, "T", None), (18, "B", None), (43, None, "E")]


def test_au_alternatives_keep_the_first_and_record_the_rest():
    (code,), _ = parse_aus("4 or 7")
    assert code == AUCode(4, alternatives=(AUCode(7),)) and code.uncertain and str(code) == "(4 or 7)"
    codes, _ = parse_aus("(R6 or R12)+R15")
    assert [str(c) for c in codes] == ["(R6 or R12)", "R15"] and not codes[1].uncertain
    (slash,), _ = parse_aus("A/L12")
    assert (slash.side, slash.number, slash.alternatives) == ("A", 12, (AUCode(12, side="L"),))
    (intensity,), _ = parse_aus("10A/B")
    assert intensity == AUCode(10, intensity="A", alternatives=(AUCode(10, intensity="B"),))
    (three,), _ = parse_aus("R14A OR 17A or 24A")
    assert str(three) == "(R14A or 17A or 24A)"


def test_au_ref_codes():
    codes, unparsed = parse_aus("ref(7B)+43C+ ref(L10)")
    assert codes == [AUCode(7, intensity="B", ref=True), AUCode(43, intensity="C"), AUCode(10, "L", ref=True)]
    assert format_aus(codes) == "ref(7B)+ref(L10)+43C" and unparsed == []


@pytest.mark.parametrize("text,codes,unparsed", [
    ("R14+17+soft focus", "R14+17", ["soft focus"]),
    ("M60+12", "12", ["M60"]),
    ("12X", "", ["12X"]),
    ("4 or ?", "", ["4 or ?"]),
    ("4+AU", "4", ["AU"]),
])
def test_unknown_au_tokens_are_kept(text, codes, unparsed):
    found, left = parse_aus(text)
    assert format_aus(found) == codes and left == unparsed


def test_parse_frame():
    assert parse_frame(12) == (12, None) and parse_frame(12.0) == (12, None) and parse_frame("045") == (45, None)
    assert parse_frame("123 ") == (123, "stray spaces in '123 ', read as 123")
    assert parse_frame("/") == (None, "missing ('/')") and parse_frame(None) == (None, "blank")
    assert parse_frame("-")[0] is None and parse_frame("4970?") == (4970, "marked uncertain ('4970?')")
    for typo in ("12O", "1 2", 3.5, "l2"):
        with pytest.raises(ValueError, match="frame number"):
            parse_frame(typo)


# ------------------------------------------------------------------------------------------------ generated sheets

CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
MMEW_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
               "remarks"]


def test_casme3_layout(tmp_path):
    path = write_sheet(tmp_path / "CAS(ME)3_part_A_ME_label.xlsx", [
        CASME3_HEADER,
        ["spNO.1", "a", 143, 168, 184, "L1+L2", 2, "surprise"],
        ["spNO.1", "a", 900, None, 950, "4\uff0c7", 3, "disgust"],  # part-C style: no apex, full-width comma
        ["spNO.2", "b", 10, 20, 30, "AU12", 1, "happy"],
    ])
    clips = read_casme3(path)
    assert [(c.subject, c.clip, c.onset, c.apex, c.offset, c.aus) for c in clips] == [
        ("spNO.1", "a", 143, 168, 184, "L1+L2"), ("spNO.1", "a", 900, None, 950, "4+7"),
        ("spNO.2", "b", 10, 20, 30, "12")]
    assert {c.fps for c in clips} == {30} and clips[0].frame_dir == "spNO.1/a"
    assert [c.clip_id for c in clips] == ["c3_spNO.1_a_143", "c3_spNO.1_a_900", "c3_spNO.2_b_10"]
    assert clips[1].problems == [f"{path.name}[Sheet1] row 3, column 'Apex': blank"]
    assert build_me_summary(clips)["happiness"] == ["c3_spNO.2_b_10"]  # 'happy' is happiness
    assert [c.clip_id for c in read_annotations(path)] == [c.clip_id for c in clips]  # detected by name
    neutral = shutil.copy(path, tmp_path / "labels.xlsx")
    assert read_annotations(neutral)[0].dataset == "casme3"  # detected by header


def test_casme3_part_c_without_apex_column(tmp_path):
    header = [h for h in CASME3_HEADER if h != "Apex"]
    path = write_sheet(tmp_path / "part_C.xlsx", [header, ["spNO.3", "c", 5, 40, "R12", 1, "happy"]])
    (clip,) = read_annotations(path, dataset="casme3")
    assert clip.apex is None and clip.problems == [] and clip.aus == "R12"


def test_mmew_layout(tmp_path):
    path = write_sheet(tmp_path / "MMEW_Micro_Exp.xlsx", [
        MMEW_HEADER,
        ["S01", "1_1", 17, 28, 45, "6+12", "happiness", None],
        ["S02", "2_5", 3, 14, 30, "R4+L7", "Others", "eye blink"],
    ], title="micro")
    clips = read_mmew(path)
    assert [(c.subject, c.clip, c.emotion, c.aus) for c in clips] == [
        ("S01", "1_1", "happiness", "6+12"), ("S02", "2_5", "others", "R4+L7")]
    assert {c.fps for c in clips} == {90} and {c.dataset for c in clips} == {"mmew"}
    assert clips[0].frame_dir == "Micro_Expression/happiness/1_1" and clips[0].clip_id == "m_1_1"
    assert read_annotations(shutil.copy(path, tmp_path / "x.xlsx"))[0].dataset == "mmew"  # 'remarks' column


def test_header_found_below_notes_and_numeric_subjects_padded(tmp_path):
    samm_header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
                   "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
    path = write_sheet(tmp_path / "samm_v3.xlsx", [
        ["SAMM Dataset - notes"], ["Symbol Key:"], ['"/" = or'], samm_header,
        [6, "006_1_2", 1, 10, 20, 30, 21, "Micro - 1/2", "4+7", "Anger", 3, None],
    ])
    (clip,) = read_samm(path)
    assert clip.subject == "006" and clip.source.endswith("row 5") and clip.frame_dir == "006/006_1_2"


def test_bad_cells_are_flagged_with_sheet_row_and_column(tmp_path):
    path = write_sheet(tmp_path / "CASME2-bad.xlsx", [
        ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
         "Estimated Emotion"],
        ["01", "EP01", None, "12O", 20, 30, None, "4", "disgust"],
        ["01", "EP02", None, 50, "123 ", 40, None, "4+blah", "others"],
        ["02", "EP03", None, 10, "-", 30, None, None, "happiness"],
    ], title="codes")
    clips = read_casme2(path)
    assert [c.clip_id for c in clips] == ["c_sub01_EP01", "c_sub01_EP02", "c_sub02_EP03"]
    where = "CASME2-bad.xlsx[codes] row"
    assert clips[0].onset is None
    assert clips[0].problems == [f"{where} 2, column 'OnsetFrame': not a frame number: '12O'"]
    assert clips[1].apex == 123 and clips[1].problems == [
        f"{where} 3, column 'ApexFrame': stray spaces in '123 ', read as 123",
        f"{where} 3: onset 50 > offset 40",
        f"{where} 3: apex 123 outside [onset, offset] = [50, 40]",
        f"{where} 3, column 'Action Units': unparsed AU token 'blah' in '4+blah'"]
    assert clips[2].apex is None and clips[2].problems == [
        f"{where} 4, column 'ApexFrame': missing ('-')", f"{where} 4, column 'Action Units': no AU codes (blank)"]
    with pytest.raises(AnnotationError, match=r"CASME2-bad.xlsx\[codes\] row 2, column 'OnsetFrame'.*'12O'"):
        read_casme2(path, strict=True)
    rows = to_rows(clips)
    assert "onset 50 > offset 40" in rows[1]["problems"] and rows[0]["onset"] is None


def test_row_without_filename_warns(tmp_path):
    path = write_sheet(tmp_path / "mmew.xlsx", [MMEW_HEADER, ["S01", None, 1, 2, 3, "12", "happiness", None]])
    with pytest.warns(UserWarning, match="row 2: no Subject or Filename"):
        assert read_mmew(path) == []
    with pytest.raises(AnnotationError, match="row 2"):
        read_mmew(path, strict=True)


def test_unknown_layouts_are_refused(tmp_path):
    odd = write_sheet(tmp_path / "odd.xlsx", [["Subject", "Filename", "Start", "End", "Label"], ["1", "a", 1, 2, "x"]])
    with pytest.raises(ValueError, match=r"not a known ME annotation layout; columns found: \['Subject', 'Filename', "
                                         r"'Start', 'End', 'Label'\]; known formats: "
                                         r"samm \(.*Inducement Code\).*casme2 .*smic"):
        read_annotations(odd)
    no_header = write_sheet(tmp_path / "notes.xlsx", [["just", "notes"], [1, 2]])
    with pytest.raises(ValueError, match=r"no header row with 'Filename'.*\['just', 'notes'\].*known formats"):
        read_annotations(no_header)
    casme3 = write_sheet(tmp_path / "c3.xlsx", [CASME3_HEADER, ["spNO.1", "a", 1, 2, 3, "4", 3, "fear"]])
    with pytest.raises(ValueError, match=r"not a samm sheet: columns \['OnsetFrame', 'OffsetFrame', .*\] missing"):
        read_samm(casme3)
    with pytest.raises(ValueError, match="unknown dataset"):
        read_annotations(casme3, dataset="ckplus")


# ------------------------------------------------------------------------------------------------ SMIC

def make_smic_tree(root: Path) -> Path:
    for clip in ("s3/micro/positive/s3_po_05", "s11/micro/negative/s11_ne_02", "s20/micro/surprise/s20_sur_01",
                 "s20/micro/surprise/s20_sur_02", "s20/non_micro/surprise/s20_nm_01"):
        (root / clip).mkdir(parents=True)
        (root / clip / "image000001.bmp").write_bytes(b"")
    (root / "readme.txt").write_text("not a subject")
    return root


def test_smic_folders(tmp_path):
    root = make_smic_tree(tmp_path / "SMIC" / "HS")
    clips = read_smic(root)
    assert [(c.subject, c.clip, c.emotion) for c in clips] == [
        ("s11", "s11_ne_02", "negative"), ("s20", "s20_sur_01", "surprise"), ("s20", "s20_sur_02", "surprise"),
        ("s3", "s3_po_05", "positive")]
    assert {c.fps for c in clips} == {100} and {c.dataset for c in clips} == {"smic"}
    assert clips[0].frame_dir == "s11/micro/negative/s11_ne_02" and clips[0].clip_id == "smic_s11_ne_02"
    assert all(c.onset is None and c.apex is None and c.action_units == [] and not c.problems for c in clips)
    assert {c.fps for c in read_smic(root, fps=25)} == {25}
    assert len(read_annotations(root)) == 4  # a folder is SMIC
    summary = build_me_summary(clips)
    assert summary["surprise"] == ["smic_s20_sur_01", "smic_s20_sur_02"] and summary["happiness"] == []


def test_smic_empty_tree_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no SMIC clips"):
        read_smic(tmp_path)


# ------------------------------------------------------------------------------------------------ outputs

def test_csv_table_and_summary_keys(tmp_path):
    sheet = write_sheet(tmp_path / "MMEW.xlsx", [
        MMEW_HEADER,
        ["S01", "1_1", 17, "/", 45, "6+12", "happiness", None],
        ["S01", "1_2", 5, 9, 12, "L10", "disgust", None],
        ["S02", "2_1", 5, 9, 12, "14", "others", None],
    ])
    clips = read_mmew(sheet) + read_smic(make_smic_tree(tmp_path / "smic"))
    path = write_annotation_csv(clips, tmp_path / "out" / "annotations.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["subject", "clip", "clip_id", "dataset", "onset", "apex", "offset", "aus", "aus_raw",
                             "emotion", "fps", "frame_dir", "problems"]
    assert rows[0]["apex"] == "" and "missing ('/')" in rows[0]["problems"] and rows[0]["aus"] == "6+12"
    assert rows[1]["aus"] == "L10" and rows[1]["problems"] == "" and rows[-1]["dataset"] == "smic"
    summary = build_me_summary(clips)
    assert list(summary) == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert summary["happiness"] == ["m_1_1"] and summary["disgust"] == ["m_1_2"] and summary["anger"] == []
    assert all(i.startswith(("m_", "smic_")) for ids in summary.values() for i in ids)
    assert "m_2_1" not in str(summary)  # 'others' dropped
    assert build_me_summary([]) == {emotion: [] for emotion in SUMMARY_EMOTIONS}


# ---------------------------------------------------------------------------------------------------- dataset table
def test_every_reader_takes_its_facts_from_the_dataset_table():
    from catalog.datasets import DATASETS, dataset_in_name, dataset_of_clip_id, native_fps
    from data.annotation_sheets import LAYOUTS
    from data.me_curves import load_clip_curve
    from metrics.pairs import parse_group

    # One spelling per dataset; the others found in names all lead to it.
    for name, key in (("CASME2-coding-20140508.xlsx", "casme2"), ("casme_ii_aus", "casme2"),
                      ("CASME II", "casme2"), ("CAS(ME)^3_part_A.xlsx", "casme3"), ("casme3", "casme3"),
                      ("SAMM_Micro_FACS_Codes_v2.xlsx", "samm"), ("SMIC-HS", "smic"), ("MMEW_Final", "mmew")):
        assert dataset_in_name(name).key == key, name
        assert native_fps(name) == DATASETS[key].fps
    assert dataset_in_name("london_faces") is None and native_fps("london_faces") == 30
    assert parse_group("casme2_Positive_asianFemale") == ("casme2", "positive")
    assert parse_group("samm_other_x") == ("samm", "others")
    # The clip ids the sheets write are the ids N2ME's AU folders are looked up by, for every dataset.
    for d in DATASETS.values():
        clip_id, _ = d.paths("7", "x_1", "happiness", 12)
        assert clip_id.startswith(d.clip_prefix) and dataset_of_clip_id(clip_id)[0] is d
        assert (d.sheet is None) == (d.key not in LAYOUTS)
    assert DATASETS["casme2"].paths("1", "EP02_01f", "", None) == ("c_sub01_EP02_01f", "sub01/EP02_01f")
    with pytest.raises(FileNotFoundError, match="--casme_ii_aus_dir"):  # N2ME's flag spelling, named in the error
        load_clip_curve("c_sub01_EP02_01f", {})
