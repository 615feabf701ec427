"""Regenerate examples/speech.wav and examples/speech.txt: the speech the README's first command animates.

Synthesized by medtalk itself (piper's joe voice through medtalk.synth.speech, fixed seed and rate), so
the repository ships no recording of anyone. The same machine gives the same bytes every time.

    .venv/bin/python scripts/make_example_speech.py [--out examples]

Needs the synth extra (pip install 'medtalk[synth]').
"""

from __future__ import annotations

import argparse
from pathlib import Path

TEXT = "Well, well, look who finally decided to show up for the party."
SEED = 0
RATE_WPM = 134  # slower than joe's natural 165 words a minute: about 3.4 s
SAMPLE_RATE = 16000


def make(folder: Path) -> tuple[Path, Path]:
    """Write speech.wav (16 kHz mono, 16-bit) and speech.txt (its transcript) into ``folder``."""
    import soundfile

    from medtalk.core.audio import audio_from_array
    from medtalk.synth.speech import speak

    speech = speak(TEXT, engine="piper", voice="joe", rate_wpm=RATE_WPM, seed=SEED)
    audio = audio_from_array(speech.samples, speech.sample_rate, target_sample_rate=SAMPLE_RATE)
    folder.mkdir(parents=True, exist_ok=True)
    wav, txt = folder / "speech.wav", folder / "speech.txt"
    soundfile.write(wav, audio.samples, SAMPLE_RATE, subtype="PCM_16")
    txt.write_text(TEXT + "\n", encoding="utf-8")
    return wav, txt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples", help="output folder"
    )
    wav, txt = make(parser.parse_args().out)
    import soundfile

    print(f"wrote {wav} ({soundfile.info(wav).duration:.2f} s) and {txt}")


if __name__ == "__main__":
    main()
