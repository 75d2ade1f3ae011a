"""Benchmark loaders: each published format read as its authors lay it out, and refused when it is not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from foveate.errors import DatasetFormatError
from foveate.evaluation.datasets import first_of_each_split, load_benchmark, read_question_file
from foveate.synthetic.formats import write_hrbench, write_jsonl, write_mme_realworld, write_vstar
from foveate.synthetic.scenes import generate_scene

SIZE = (256, 320)  # loaders never look at pixels beyond opening them: tiny scenes keep these fast


def test_vstar_reads_both_splits_right_option_first_and_xywh_boxes(tmp_path: Path) -> None:
    write_vstar(tmp_path, 6, seed=3, size_range=SIZE)
    questions = load_benchmark("vstar", tmp_path, images_dir=tmp_path / "img")
    assert [q.split for q in questions] == ["attribute"] * 3 + ["spatial"] * 3
    for q in questions:
        _, item = generate_scene(3, int(q.id.rsplit("-", 1)[1]), size_range=SIZE)
        assert q.answer == q.options[0] == item.answer  # V*: the first option is the right one
        assert q.boxes == [tuple(t.box) for t in item.targets]  # [x, y, w, h] read back as corners
        assert q.image.suffix == ".jpg" and q.image.is_file()


def test_hrbench_rows_are_questions_with_the_answer_letter_mapped(tmp_path: Path) -> None:
    tsv = write_hrbench(tmp_path / "hr_bench_4k.tsv", 2, seed=3, size_range=SIZE)
    questions = load_benchmark("hrbench", tsv, images_dir=tmp_path / "img")
    assert len(questions) == 8  # two questions, four cycles each
    first = questions[:4]
    assert len({q.answer for q in first}) == 1  # one right answer, moved through A-D
    assert [q.options.index(q.answer or "") for q in first] == [0, 1, 2, 3]
    assert [q.split for q in questions] == ["4K single"] * 4 + ["4K cross"] * 4
    assert first[0].image.read_bytes()[:2] == b"\xff\xd8"  # the base64 JPEG written out as it was


def test_hrbench_parquet_reads_the_same_as_the_tsv(tmp_path: Path) -> None:
    tsv = write_hrbench(tmp_path / "a" / "hr_bench_8k.tsv", 2, seed=4, size_range=SIZE)
    parquet = write_hrbench(tmp_path / "b" / "hr_bench_8k.parquet", 2, seed=4, size_range=SIZE, parquet=True)
    a = load_benchmark("hrbench", tsv, images_dir=tmp_path / "ia")
    b = load_benchmark("hrbench", parquet, images_dir=tmp_path / "ib")
    strip = [q.model_dump(exclude={"image"}) for q in a]
    assert strip == [q.model_dump(exclude={"image"}) for q in b]
    assert all(x.image.read_bytes() == y.image.read_bytes() for x, y in zip(a, b, strict=True))


def test_mme_realworld_strips_choice_letters_and_maps_the_ground_truth(tmp_path: Path) -> None:
    write_mme_realworld(tmp_path / "data", 4, seed=3, size_range=SIZE)
    questions = load_benchmark("mme-realworld", tmp_path, images_dir=tmp_path / "img")  # finds data/
    records = json.loads((tmp_path / "data" / "MME-RealWorld-Lite.json").read_text())
    for q, r in zip(questions, records, strict=True):
        letter = r["Ground truth"]
        assert q.answer == q.options["ABCDE".index(letter)]
        assert not q.options[0].startswith("(")
        assert q.split == f"Perception / {r['Subtask']}"


def test_jsonl_reads_boxes_and_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", 3, seed=3, size_range=SIZE)
    questions = load_benchmark("jsonl", path, images_dir=tmp_path / "img")
    assert [q.id for q in questions] == ["scene-3-00000", "scene-3-00001", "scene-3-00002"]
    assert all(q.boxes for q in questions)


def test_limit_takes_from_each_split_in_turn(tmp_path: Path) -> None:
    write_vstar(tmp_path, 8, seed=3, size_range=SIZE)
    questions = load_benchmark("vstar", tmp_path, images_dir=tmp_path / "img", limit=3)
    assert [q.split for q in questions] == ["attribute", "spatial", "attribute"]
    everything = load_benchmark("vstar", tmp_path, images_dir=tmp_path / "img")
    assert first_of_each_split(everything, 100) != everything  # interleaved, not file order
    assert sorted(q.id for q in first_of_each_split(everything, 100)) == sorted(q.id for q in everything)


# ------------------------------------------------------------------ refusals: one line naming the difference
def _refused(fmt: str, path: Path, *words: str) -> str:
    with pytest.raises(DatasetFormatError) as info:
        load_benchmark(fmt, path, images_dir=path.parent / "img")
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_a_foreign_folder_is_refused_by_every_format(tmp_path: Path) -> None:
    write_mme_realworld(tmp_path / "mme", 2, size_range=SIZE)
    _refused("vstar", tmp_path / "mme", "not a V* Bench folder", "direct_attributes/")
    _refused("hrbench", tmp_path / "mme", "hr_bench_4k.tsv")
    write_vstar(tmp_path / "v", 2, size_range=SIZE)
    _refused("mme-realworld", tmp_path / "v", "MME-RealWorld-Lite.json")
    _refused("coco", tmp_path / "v", "no benchmark format 'coco'")


def test_a_truncated_vstar_folder_names_the_file(tmp_path: Path) -> None:
    write_vstar(tmp_path, 4, size_range=SIZE)
    meta = sorted((tmp_path / "relative_position").glob("*.json"))[0]
    meta.write_text(meta.read_text()[:30])  # a download cut short
    _refused("vstar", tmp_path, meta.name, "not readable JSON")
    meta.unlink()
    _refused("vstar", tmp_path, "has no", meta.name)


def test_vstar_boxes_must_be_xywh(tmp_path: Path) -> None:
    write_vstar(tmp_path, 1, size_range=SIZE)
    meta = next((tmp_path / "direct_attributes").glob("*.json"))
    data = json.loads(meta.read_text())
    data["bbox"] = [[10, 10, 5]]
    meta.write_text(json.dumps(data))
    _refused("vstar", tmp_path, "[x, y, w, h]")


def test_hrbench_missing_column_and_truncated_file(tmp_path: Path) -> None:
    tsv = write_hrbench(tmp_path / "hr_bench_4k.tsv", 1, size_range=SIZE)
    text = tsv.read_text()
    header, *rows = text.splitlines()
    renamed = tmp_path / "renamed" / "hr_bench_4k.tsv"
    renamed.parent.mkdir()
    renamed.write_text("\n".join([header.replace("\tquestion\t", "\tprompt\t"), *rows]))
    _refused("hrbench", renamed, "no column 'question'")
    cut = tmp_path / "cut" / "hr_bench_4k.tsv"
    cut.parent.mkdir()
    cut.write_text(text[: len(header) + 60])  # the first row cut inside its options
    _refused("hrbench", cut, f"{cut}:2")


def test_mme_realworld_bad_choice_and_missing_image(tmp_path: Path) -> None:
    write_mme_realworld(tmp_path, 2, size_range=SIZE)
    path = tmp_path / "MME-RealWorld-Lite.json"
    records = json.loads(path.read_text())
    records[1]["Answer choices"][0] = "A: red"
    path.write_text(json.dumps(records))
    _refused("mme-realworld", tmp_path, "[1]", "'(A) text'")
    records[1]["Answer choices"][0] = "(A) red"
    path.write_text(json.dumps(records))
    shutil.rmtree(tmp_path / "imgs")
    _refused("mme-realworld", tmp_path, "[0]", "no image")


def test_a_question_file_read_leniently_reports_each_bad_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", 2, size_range=SIZE)
    lines = path.read_text().splitlines()
    lines.insert(1, "{not json")
    lines.append(json.dumps({"image": "images/none.png", "question": "What?"}))
    lines.append(
        json.dumps({"image": lines[0] and "images/scene-1-00000.png", "question": "Q", "options": ["a", "a"]})
    )
    path.write_text("\n".join(lines) + "\n")
    questions, problems = read_question_file(path, strict=False)
    assert len(questions) == 2
    assert [p.line for p in problems] == [2, 4, 5]
    assert "not JSON" in problems[0].error and "no image file" in problems[1].error
    with pytest.raises(DatasetFormatError, match=r"q.jsonl:2: not JSON"):
        read_question_file(path, strict=True)


def test_bench_make_writes_each_format_for_foveate_eval(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from foveate.cli.main import app

    runner = CliRunner()
    for fmt in ("vstar", "hrbench", "mme-realworld", "jsonl"):
        out = tmp_path / fmt
        result = runner.invoke(app, ["bench", "make", "--format", fmt, "--n", "2", "--out", str(out)])
        assert result.exit_code == 0, result.output
        path = result.output.split(f"foveate eval {fmt} ", 1)[1].split()[0]
        questions = load_benchmark(fmt, Path(path), images_dir=tmp_path / "img")
        assert len(questions) == (8 if fmt == "hrbench" else 2)
    bad = runner.invoke(app, ["bench", "make", "--format", "coco", "--n", "1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no format 'coco'" in bad.output
