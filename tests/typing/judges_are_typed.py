"""Checked by pyright (tests/test_typing.py), never run: what a user's type checker sees."""

from judgealign import AlignedJudge, Judge, MemAlignOptimizer, SupportsJudging, make_judge

judge: Judge = make_judge(name="j", instructions="Is {{ outputs }} ok?", model="openai:/gpt-4o")

# With an optimizer, align() is typed as that optimizer's judge.
aligned: AlignedJudge = judge.align([], optimizer=MemAlignOptimizer())
guideline_count: int = len(aligned.guidelines)

# With the default optimizer, as the shared judge protocol.
default: SupportsJudging = judge.align([])

# Plain and aligned judges both satisfy the protocol.
judges: list[SupportsJudging] = [judge, aligned, default]
