"""Speech synthesis with known word and phone timings, for tests and the synthetic training corpus.

The engines (espeak-ng, piper) are GPL-licensed and optional (the ``synth`` extra): they are imported only
when speech is synthesized, never by medtalk's core or default plugins.
"""
