"""The synthetic corpus (`medtalk data synth`): grammar, augmentation, rendering, resume, refusal, CLI."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import medtalk
from medtalk.core.data.samples import EMOTIONS
from medtalk.core.errors import InputError
from medtalk.synth import sentences
from medtalk.synth.augment import augment_speech, stored_length
from medtalk.synth.corpus import (
    HELDOUT_ESPEAK_VOICES,
    MANIFEST,
    TRAIN_ESPEAK_VOICES,
    UTTERANCES,
    CorpusSettings,
    open_corpus,
)

pytest.importorskip("espeakng_loader", reason="the synth extra (espeakng-loader) is not installed")

ESPEAK = CorpusSettings(seed=7, engine="espeak")
COUNT = 4


def synthesize(folder: Path, count: int, settings: CorpusSettings = ESPEAK, *, force: bool = False) -> list:
    return list(open_corpus(folder, count, settings, force=force).run())


def corpus_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a corpus but corpus.json (which records the count asked for), by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "corpus.json"
    }


def manifest_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST).read_text(encoding="utf-8").splitlines()]


def utterance_records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / UTTERANCES).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "out"
    events = synthesize(folder, COUNT)
    assert [event.done for event in events] == list(range(COUNT + 1))
    return folder


# ------------------------------------------------------------------------------------------------ grammar


def test_sentences_are_deterministic_for_a_generator_state():
    first = [sentences.make_sentence(np.random.default_rng(3)) for _ in range(3)]
    assert len(set(first)) == 1
    assert sentences.make_sentence(np.random.default_rng(4)) != first[0]


def test_held_out_sentences_never_occur_in_training():
    train = {sentences.make_sentence(rng, "train") for rng in map(np.random.default_rng, range(1500))}
    heldout = {sentences.make_sentence(rng, "heldout") for rng in map(np.random.default_rng, range(1500))}
    assert len(train) > 1200 and len(heldout) > 600  # varied
    assert not train & heldout

    def tokens(text: str) -> set[str]:
        return set(re.findall(r"[a-z']+", text.lower()))

    # The guarantee behind it: every held-out sentence has a word the training part never uses.
    training_vocabulary: set[str] = set()
    for template in sentences.templates("train"):
        training_vocabulary |= tokens(re.sub(r"\{[a-z_]+\d?\}", " ", template))
    for words in sentences.slot_words("train").values():
        for word in words:
            training_vocabulary |= tokens(word)
    for sentence in heldout:
        assert tokens(sentence) - training_vocabulary, sentence
    assert not set(sentences.templates("train")) & set(sentences.templates("heldout"))


def test_emotional_words_are_the_teachers_and_frequent():
    from medtalk.teacher.lexicon import EMOTIONAL_WORDS

    assert set(sentences.emotional_words()) <= set(EMOTIONAL_WORDS)
    assert not set(sentences.emotional_words("train")) & set(sentences.emotional_words("heldout"))
    drawn = [sentences.make_sentence(rng) for rng in map(np.random.default_rng, range(400))]
    with_one = [s for s in drawn if set(re.findall(r"[a-z]+", s.lower())) & set(EMOTIONAL_WORDS)]
    assert len(with_one) / len(drawn) > 0.5
    # Every emotion has words in the training grammar.
    carried = {EMOTIONAL_WORDS[word] for word in sentences.emotional_words("train")}
    assert carried >= set(EMOTIONS) - {"neutral"}


def test_sentences_are_rich_in_the_sounds_the_lip_benchmarks_measure():
    from medtalk.synth.speech import speak

    drawn = [sentences.make_sentence(rng) for rng in map(np.random.default_rng, range(60))]
    phone_sets = [{phone.symbol for phone in speak(text).phones} for text in drawn]

    def share(symbols: set[str]) -> float:
        return sum(bool(phones & symbols) for phones in phone_sets) / len(phone_sets)

    assert share({"P", "B", "M"}) >= 0.9
    assert share({"UW", "UH", "W"}) >= 0.6
    assert share({"L", "TH", "DH", "T", "D"}) >= 0.95


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="unknown split 'test'"):
        sentences.make_sentence(np.random.default_rng(0), "test")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- augmentation


def test_augmentation_keeps_the_length_and_is_deterministic():
    rate = 22_050
    time = np.arange(int(1.3 * rate)) / rate
    clean = (0.5 * np.sin(2 * np.pi * 220 * time) * (time < 1.0)).astype(np.float32)
    records = []
    for seed in range(12):
        first, record = augment_speech(clean, rate, np.random.default_rng(seed), 16_000)
        again, _ = augment_speech(clean, rate, np.random.default_rng(seed), 16_000)
        assert np.array_equal(first, again)
        assert first.dtype == np.float32 and len(first) == stored_length(len(clean), rate, 16_000)
        assert float(np.abs(first).max()) <= 0.99 + 1e-6
        records.append(record)
    # The effects vary: some clips get noise and some none, some a band limit, some a resampling.
    assert {record["noise"] is None for record in records} == {True, False}
    assert {record["band_hz"] is None for record in records} == {True, False}
    assert {record["resample_hz"] is None for record in records} == {True, False}


def test_noise_is_added_at_the_recorded_snr():
    rate = 16_000
    clean = (0.3 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate)).astype(np.float32)
    for seed in range(40):
        noisy, record = augment_speech(clean, rate, np.random.default_rng(seed), rate)
        if record["noise"] is None or record["band_hz"] or record["resample_hz"]:
            continue
        gain = 10 ** (record["gain_db"] / 20)
        noise = noisy / gain - clean
        snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
        assert snr == pytest.approx(record["noise"]["snr_db"], abs=0.5)
        return
    pytest.fail("no seed drew noise alone")


# ------------------------------------------------------------------------------------------------ corpus


def test_every_utterance_has_seven_emotions_of_equal_length(corpus):
    lines = manifest_lines(corpus)
    records = utterance_records(corpus)
    assert len(lines) == COUNT * len(EMOTIONS)
    assert [record["utterance"] for record in records] == [f"s{index:05d}" for index in range(COUNT)]
    for record in records:
        group = [line for line in lines if line["utterance"] == record["utterance"]]
        assert [line["emotion"] for line in group] == list(EMOTIONS)
        assert {line["audio"] for line in group} == {record["audio"]}
        assert {line["transcript"] for line in group} == {record["transcript"]}
        lengths = {len((corpus / line["rig"]).read_text().splitlines()) for line in group}
        assert lengths == {record["frames"]} == {round(record["duration_s"] * 60)}
        assert record["voice"] in TRAIN_ESPEAK_VOICES and record["engine"] == "espeak"


def test_the_manifest_loads_as_paired_and_manifest_datasets(corpus):
    paired = medtalk.build("dataset", {"type": "paired", "path": str(corpus / MANIFEST)})
    assert len(paired) == COUNT * len(EMOTIONS)
    groups = paired.groups()
    assert len(groups) == COUNT
    assert all(tuple(sample.emotion for sample in group) == EMOTIONS for group in groups.values())
    assert paired.same_content_pairs(0)
    every = ["rig", "audio", "emotion", "transcript", "guidance_text", "guidance_image", "utterance"]
    config = {"type": "manifest", "path": str(corpus / MANIFEST), "require": every}
    manifest = medtalk.build("dataset", config)
    assert manifest[0].rig.shape[1] == 174
    assert manifest[0].audio_path.is_file() and manifest[0].guidance_image.suffix == ".npy"


def test_audio_is_16_khz_and_as_long_as_the_clean_speech(corpus):
    import soundfile

    for record in utterance_records(corpus):
        samples, rate = soundfile.read(corpus / record["audio"])
        assert rate == 16_000
        assert len(samples) == round(record["duration_s"] * 16_000)
        assert float(np.abs(samples).max()) > 0.01


def test_phone_and_word_timings_are_stored(corpus):
    for record in utterance_records(corpus):
        phones = record["phones"]
        assert phones[0][1] == 0.0
        assert phones[-1][2] == pytest.approx(record["duration_s"], abs=1e-6)
        assert all(
            before[2] == pytest.approx(after[1]) for before, after in zip(phones, phones[1:], strict=False)
        )
        spoken = [word for word, _, _ in record["words"]]
        assert spoken == re.findall(r"[A-Za-z']+", record["transcript"])
    all_phones = [phone for record in utterance_records(corpus) for phone, _, _ in record["phones"]]
    assert {"P", "B", "M"} & set(all_phones)


def test_guidance_text_is_present_and_varies(corpus):
    texts = [line["guidance_text"] for line in manifest_lines(corpus)]
    assert all(text.strip() for text in texts)
    assert len(set(texts)) >= len(texts) // 2
    by_utterance: dict[str, list[str]] = {}
    for line in manifest_lines(corpus):
        by_utterance.setdefault(line["utterance"], []).append(line["guidance_text"])
    for record in utterance_records(corpus):
        rendered = [rendering["guidance_text"] for rendering in record["renderings"]]
        assert rendered == by_utterance[record["utterance"]]


def test_arkit_vectors_are_52_scores_in_0_1(corpus):
    vectors = {line["id"]: np.load(corpus / line["guidance_image"]) for line in manifest_lines(corpus)}
    for vector in vectors.values():
        assert vector.shape == (52,) and vector.dtype == np.float32
        assert float(vector.min()) >= 0.0 and float(vector.max()) <= 1.0
    # Expressive emotions move the face: their vectors are not all zero and differ between emotions.
    happy, angry = vectors["s00000_happy"], vectors["s00000_angry"]
    assert happy.max() > 0.05 and angry.max() > 0.05
    assert not np.allclose(happy, angry)


def test_the_expression_variant_varies_with_the_utterance(corpus):
    variants = {
        rendering["expression"]
        for record in utterance_records(corpus)
        for rendering in record["renderings"]
        if rendering["emotion"] != "neutral"
    }
    assert len(variants) > len(EMOTIONS) - 1  # more than one variant of some emotion was drawn


def test_same_seed_gives_identical_files_and_another_seed_others(corpus, tmp_path):
    synthesize(tmp_path / "again", COUNT)
    assert corpus_bytes(tmp_path / "again") == corpus_bytes(corpus)
    synthesize(tmp_path / "other", 2, CorpusSettings(seed=8, engine="espeak"))
    other = manifest_lines(tmp_path / "other")
    first_two = manifest_lines(corpus)[: 2 * len(EMOTIONS)]
    assert [line["transcript"] for line in other] != [line["transcript"] for line in first_two]
    happy = "rig/s00000_happy.txt"
    assert (tmp_path / "other" / happy).read_bytes() != (corpus / happy).read_bytes()


def test_resume_after_interruption_ends_identical(corpus, tmp_path):
    # Interrupted while writing utterance 2 of 4: its wav is there, half its manifest lines, no record.
    partial = tmp_path / "partial"
    synthesize(partial, 2)
    shutil.copy(corpus / "wav/s00002.wav", partial / "wav/s00002.wav")
    with open(partial / MANIFEST, "ab") as stream:
        stream.write((corpus / MANIFEST).read_bytes().splitlines(keepends=True)[14][:40])
    events = synthesize(partial, COUNT)
    assert events[0].kept == 2 and [event.utterance for event in events[1:]] == ["s00002", "s00003"]
    assert corpus_bytes(partial) == corpus_bytes(corpus)

    # A file of the last utterance lost: that utterance is redone, the others kept.
    damaged = tmp_path / "damaged"
    shutil.copytree(corpus, damaged)
    (damaged / "arkit/s00003_sad.npy").unlink()
    events = synthesize(damaged, COUNT)
    assert events[0].kept == 3 and [event.utterance for event in events[1:]] == ["s00003"]
    assert corpus_bytes(damaged) == corpus_bytes(corpus)

    # The manifest group committed but not the record: redone too. A complete corpus does nothing.
    uncommitted = tmp_path / "uncommitted"
    shutil.copytree(corpus, uncommitted)
    records = (uncommitted / UTTERANCES).read_bytes().splitlines(keepends=True)
    (uncommitted / UTTERANCES).write_bytes(b"".join(records[:-1]))
    assert [event.utterance for event in synthesize(uncommitted, COUNT)[1:]] == ["s00003"]
    assert corpus_bytes(uncommitted) == corpus_bytes(corpus)
    assert len(synthesize(uncommitted, COUNT)) == 1


def test_other_settings_are_refused_unless_forced(corpus, tmp_path):
    folder = tmp_path / "out"
    shutil.copytree(corpus, folder)
    with pytest.raises(InputError) as error:
        open_corpus(folder, COUNT, CorpusSettings(seed=8, engine="espeak"))
    assert str(error.value) == (
        f"{folder}: holds a corpus made with other settings (seed 7, not 8): use another folder, "
        "or pass --force to replace it"
    )
    with pytest.raises(InputError) as error:
        open_corpus(folder, COUNT, CorpusSettings(seed=7, engine="both", piper_share=0.25))
    assert '(engine "espeak", not "both"; piper_share none, not 0.25)' in str(error.value)
    # A changed teacher renders other takes: the corpus must not mix them.
    import medtalk.teacher.animate as animate

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(animate, "TEACHER_VERSION", "2", raising=False)
        with pytest.raises(InputError, match=r'\(versions teacher "source-[0-9a-f]{12}", not "2"\)'):
            open_corpus(folder, COUNT, ESPEAK)
    settings = json.loads((folder / "corpus.json").read_text())
    assert (settings["seed"], settings["engine"], settings["utterances"]) == (7, "espeak", COUNT)
    (folder / "notes.txt").write_text("mine")
    synthesize(folder, 1, CorpusSettings(seed=8, engine="espeak"), force=True)
    assert [record["utterance"] for record in utterance_records(folder)] == ["s00000"]
    assert sorted(path.name for path in (folder / "rig").iterdir()) == [f"s00000_{e}.txt" for e in EMOTIONS]
    assert json.loads((folder / "corpus.json").read_text())["seed"] == 8
    assert (folder / "notes.txt").read_text() == "mine"  # not a corpus file: left alone


def test_a_larger_count_extends_the_corpus(corpus, tmp_path):
    folder = tmp_path / "grow"
    synthesize(folder, 1)
    synthesize(folder, 2)
    assert manifest_lines(folder) == manifest_lines(corpus)[: 2 * len(EMOTIONS)]


def test_parallel_jobs_write_the_same_files(corpus, tmp_path):
    folder = tmp_path / "parallel"
    events = list(open_corpus(folder, 3, ESPEAK, jobs=2).run())
    assert [event.utterance for event in events] == [None, "s00000", "s00001", "s00002"]
    assert corpus_bytes(folder) == {
        name: data for name, data in corpus_bytes(corpus).items() if not re.search(r"s00003", name)
    } | {
        MANIFEST: b"".join((corpus / MANIFEST).read_bytes().splitlines(keepends=True)[: 3 * len(EMOTIONS)]),
        UTTERANCES: b"".join((corpus / UTTERANCES).read_bytes().splitlines(keepends=True)[:3]),
        ".synth.lock": b"",
    }


def test_a_corpus_being_written_is_not_written_twice(tmp_path):
    import fcntl

    folder = tmp_path / "locked"
    folder.mkdir()
    with open(folder / ".synth.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(InputError) as error:
            synthesize(folder, 1)
    assert str(error.value) == (
        f"{folder}: another medtalk data synth is writing this corpus: wait for it to finish, or use "
        "another folder"
    )
    assert not (folder / MANIFEST).exists()


def test_held_out_corpus_uses_other_sentences_and_voices(corpus, tmp_path):
    folder = tmp_path / "heldout"
    synthesize(folder, 2, CorpusSettings(seed=7, engine="espeak", holdout=True))
    records = utterance_records(folder)
    assert [record["utterance"] for record in records] == ["h00000", "h00001"]
    assert all(record["voice"] in HELDOUT_ESPEAK_VOICES and record["heldout"] for record in records)
    training = {record["transcript"] for record in utterance_records(corpus)}
    assert not training & {record["transcript"] for record in records}
    assert not set(HELDOUT_ESPEAK_VOICES) & set(TRAIN_ESPEAK_VOICES)


def test_piper_voice_renders_deterministically(tmp_path):
    pytest.importorskip("piper", reason="piper-tts is not installed")
    piper = CorpusSettings(seed=1, engine="piper")
    synthesize(tmp_path / "a", 1, piper)
    synthesize(tmp_path / "b", 1, piper)
    assert utterance_records(tmp_path / "a")[0]["voice"] == "joe"
    assert corpus_bytes(tmp_path / "a") == corpus_bytes(tmp_path / "b")


# ---------------------------------------------------------------------------------------------------- CLI


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    from medtalk.cli import run_cli

    code = run_cli(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_a_corpus_and_says_where_the_manifest_is(tmp_path, capsys):
    out = tmp_path / "cli"
    code, stdout, _ = run(["data", "synth", str(out), "--utterances", "1", "--engine", "espeak"], capsys)
    assert code == 0
    assert re.fullmatch(
        rf"wrote 1 utterance\(s\), \d+\.\d\d s per utterance; manifest: {re.escape(str(out / MANIFEST))}\n",
        stdout,
    )
    assert len(manifest_lines(out)) == len(EMOTIONS)
    code, stdout, _ = run(["data", "synth", str(out), "--utterances", "1", "--engine", "espeak"], capsys)
    assert code == 0 and stdout == f"wrote 0 utterance(s); manifest: {out / MANIFEST}\n"


def test_cli_bad_inputs_give_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    folder = str(tmp_path / "c")
    cases = [
        (["--utterances", "0"], folder,
         "error: --utterances must be 1 to 99999, got 0: give the number of sentences to render\n"),
        (["--utterances", "2"], str(a_file),
         f"error: {a_file}: is a file: give a folder for the corpus (it is created if missing)\n"),
        (["--utterances", "2", "--engine", "festival"], folder,
         "error: unknown engine 'festival': use one of piper, espeak, both\n"),
        (["--utterances", "2", "--jobs", "0"], folder,
         "error: --jobs must be 1 to 64, got 0: e.g. the number of CPU cores\n"),
        (["--utterances", "2", "--piper-share", "1.5"], folder,
         "error: --piper-share must be 0 to 1, got 1.5: e.g. 0.5\n"),
        (["--utterances", "2", "--engine", "piper", "--holdout"], folder,
         "error: --holdout speaks with espeak-ng voices kept out of training, and piper has only the "
         "training voice joe: use --engine espeak\n"),
    ]  # fmt: skip
    for options, out, message in cases:
        assert run(["data", "synth", out, *options], capsys) == (2, "", message)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    assert run(["data", "synth", folder, "--utterances", "2", "--engine", "espeak"], capsys) == (
        2,
        "",
        "error: medtalk data synth needs espeakng_loader (the synth extra) for engine espeak: "
        "pip install 'medtalk[synth]'\n",
    )
    assert not Path(folder).exists()
