"""judgealign.spark on a local[2] session against the fake OpenAI server: the result
struct, bad rows as data, the per-executor verdict cache across task retries, the shared
rate limit, driver-side checks of bad input, the UDF, aligned judges and agreement from
distributed counts.

One session serves the module (it costs seconds to start); the data is small.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pyspark", reason="needs the judgealign[spark] extra")

from judgealign import (
    ConfigurationError,
    HashingEmbedder,
    LabeledRecord,
    LiteLLMModel,
    MemAlignOptimizer,
    MissingExtraError,
    RateLimit,
    agreement,
    make_judge,
)
from judgealign.integrations.spark._session import java_problem
from judgealign.spark import (
    agreement_spark,
    align_spark,
    evaluate_spark,
    local_session,
    to_spark_udf,
)
from judgealign.testing import ChatRequest, FakeOpenAIServer, Reply, ScriptedModel

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"
KEY = "sk-fake-spark-0000"


def verdict(request: ChatRequest) -> Reply | dict[str, Any] | None:
    """True when the answer says 'right'; prose (unparseable) when it says 'garble'."""
    if "garble" in request.text:  # the verdict request and its repair alike
        return Reply(content="no JSON here, sorry")
    text = request.last_user
    if "<record>" not in text:
        return None  # distillation and other requests: the automatic reply
    return {"rationale": "checked", "result": "right" in text}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=verdict) as fake:
        yield fake


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    # Executors inherit the environment the JVM starts with: the provider key (never
    # shipped with the judge) and the offline switch.
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "JUDGEALIGN_ALLOW_NETWORK")}
    os.environ["OPENAI_API_KEY"] = KEY
    os.environ["JUDGEALIGN_ALLOW_NETWORK"] = "0"
    # local[2, 2]: two cores, and a failed task is tried twice (the retry test needs it).
    session = local_session(
        "local[2, 2]",
        **{"spark.sql.shuffle.partitions": "2", "spark.python.worker.reuse": "true"},
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def fake_judge(server: FakeOpenAIServer, **options: Any) -> Any:
    return make_judge(
        name="correct", instructions=INSTRUCTIONS, model="openai:/fake", base_url=server.base_url,
        **options,
    )  # fmt: skip


def qa_frame(spark: Any, rows: int = 12) -> Any:
    data = [
        (i, f"What is {i}+{i}?", f"{2 * i} is {'right' if i % 3 else 'wrong'}") for i in range(rows)
    ]
    return spark.createDataFrame(data, "id long, inputs string, outputs string").repartition(2)


def by_id(frame: Any, column: str = "correct") -> dict[int, Any]:
    return {row["id"]: row[column] for row in frame.collect()}


# -- evaluate_spark ---------------------------------------------------------------------


def test_every_row_gets_a_typed_result_struct(spark: Any, server: FakeOpenAIServer) -> None:
    result = evaluate_spark(qa_frame(spark), fake_judge(server), concurrency_per_task=4)
    fields = result.schema["correct"].dataType.fieldNames()
    assert fields == [
        "value", "rationale", "error", "model", "prompt_tokens", "completion_tokens",
        "cost_usd", "latency_ms", "cached", "memorised_record_id",
    ]  # fmt: skip
    assert result.schema["correct"].dataType["value"].dataType.typeName() == "boolean"
    rows = by_id(result)
    assert sorted(rows) == list(range(12))
    for i, row in rows.items():
        assert row["error"] is None and row["value"] is (i % 3 != 0), (i, row)
        assert row["rationale"] == "checked" and row["model"] == "openai:/fake"
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0


def test_structs_and_maps_reach_the_judge_as_data(spark: Any, server: FakeOpenAIServer) -> None:
    judge = make_judge(
        name="correct",
        instructions="Does {{ outputs }} match {{ expectations }} for {{ inputs }}?",
        model="openai:/fake",
        base_url=server.base_url,
    )
    frame = spark.createDataFrame(
        [(1, {"q": "2+2"}, "right: 4", {"expected": "4"})],
        "id long, inputs struct<q:string>, outputs string, expectations map<string,string>",
    )
    server.reset()
    (row,) = evaluate_spark(frame, judge).collect()
    assert row["correct"]["value"] is True
    sent = server.requests[-1].body["messages"][1]["content"]
    assert '"q": "2+2"' in sent and '"expected": "4"' in sent


def test_a_bad_row_is_an_error_in_its_struct_never_a_failed_task(
    spark: Any, server: FakeOpenAIServer
) -> None:
    data = [
        (1, "1+1?", "2 is right"),
        (2, "2+2?", None),
        (3, "3+3?", "garble"),
        (4, "4+4?", "right"),
    ]
    frame = spark.createDataFrame(data, "id long, inputs string, outputs string")
    rows = by_id(evaluate_spark(frame, fake_judge(server)))
    assert rows[1]["value"] is True and rows[4]["value"] is True
    assert rows[2]["value"] is None and "outputs=" in rows[2]["error"]
    assert rows[3]["value"] is None and rows[3]["error"]
    assert rows[3]["prompt_tokens"] > 0  # the failed requests were paid for, and say so


def test_a_retried_task_does_not_pay_again_for_rows_it_judged(
    spark: Any, server: FakeOpenAIServer
) -> None:
    from pyspark import TaskContext
    from pyspark.sql import functions as F

    def fail_first_attempt(value: Any) -> str:
        context = TaskContext.get()
        if context is not None and context.attemptNumber() == 0:
            raise RuntimeError("executor lost (simulated)")
        return "ok"

    flaky = F.udf(fail_first_attempt, "string")
    server.reset()
    result = evaluate_spark(qa_frame(spark, 10), fake_judge(server))
    rows = result.withColumn("after", flaky(F.col("correct.value"))).collect()
    assert len(rows) == 10 and all(r["after"] == "ok" for r in rows)
    # Both tasks failed once after judging all their rows; the retries read the cache.
    assert server.stats["chat"] == 10
    assert all(r["correct"]["cached"] for r in rows)
    assert all(r["correct"]["prompt_tokens"] > 0 for r in rows)  # what the verdict cost


def test_a_second_action_on_the_result_reuses_the_verdicts(
    spark: Any, server: FakeOpenAIServer
) -> None:
    result = evaluate_spark(qa_frame(spark, 8), fake_judge(server))
    server.reset()
    first = by_id(result)
    second = by_id(result)
    assert server.stats["chat"] == 8
    assert {i: r["value"] for i, r in first.items()} == {i: r["value"] for i, r in second.items()}
    assert not any(r["cached"] for r in first.values())
    assert all(r["cached"] for r in second.values())


def test_the_global_rate_limit_is_shared_by_the_running_tasks(spark: Any) -> None:
    with FakeOpenAIServer(reply=verdict, requests_per_minute=600) as limited:
        result = evaluate_spark(
            qa_frame(spark, 24),
            fake_judge(limited),
            concurrency_per_task=8,
            rate_limit=RateLimit(requests_per_minute=600),
        )
        rows = by_id(result)
        stats = limited.stats
    assert all(r["error"] is None for r in rows.values())
    assert stats["chat"] == 24 and stats["rate_limited"] == 0, stats


# -- driver-side checks -----------------------------------------------------------------


def test_a_missing_column_is_named_before_any_task(spark: Any, server: FakeOpenAIServer) -> None:
    frame = qa_frame(spark).withColumnRenamed("outputs", "answer")
    with pytest.raises(ConfigurationError, match=r"'outputs'.*outputs_col.*answer"):
        evaluate_spark(frame, fake_judge(server))
    assert evaluate_spark(frame, fake_judge(server), outputs_col="answer").count() == 12


def test_columns_of_the_wrong_type_are_refused(spark: Any, server: FakeOpenAIServer) -> None:
    judge = make_judge(
        name="j", instructions="{{ outputs }} vs {{ expectations }}", model="openai:/fake",
        base_url=server.base_url,
    )  # fmt: skip
    frame = spark.createDataFrame(
        [("a", "b", b"x")], "outputs string, expectations string, raw binary"
    )
    with pytest.raises(ConfigurationError, match="expectations must be a struct or a map"):
        evaluate_spark(frame, judge)
    with pytest.raises(ConfigurationError, match=r"'raw'.*binary"):
        evaluate_spark(frame, fake_judge(server), inputs_col="raw", outputs_col="outputs")


def test_judges_that_cannot_travel_are_refused(spark: Any, server: FakeOpenAIServer) -> None:
    frame = qa_frame(spark)
    scripted = make_judge(name="j", instructions=INSTRUCTIONS, model=ScriptedModel())
    with pytest.raises(ConfigurationError, match="model URI"):
        evaluate_spark(frame, scripted)
    keyed = fake_judge(server, inference_params={"api_key": KEY})
    with pytest.raises(ConfigurationError, match=r"api_key.*executorEnv"):
        evaluate_spark(frame, keyed)
    with pytest.raises(ConfigurationError, match=r"Spark DataFrame.*judge\.evaluate"):
        evaluate_spark(frame.toPandas(), fake_judge(server))


def test_a_provider_key_missing_everywhere_is_named(
    spark: Any, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigurationError, match=r"OPENAI_API_KEY.*spark\.executorEnv"):
        evaluate_spark(qa_frame(spark), fake_judge(server))


def test_spark_or_java_missing_give_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert java_problem() is None  # this machine has Java 17
    problem = java_problem(java_home="/nonexistent-java")
    assert problem is not None and "JAVA_HOME" in problem and "openjdk-17" in problem
    assert "no `java` on PATH" in (java_problem(java_home="", path="/nonexistent") or "")
    monkeypatch.setenv("JAVA_HOME", "/nonexistent-java")
    with pytest.raises(ConfigurationError, match="Java 17"):
        local_session()
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingExtraError, match=r"judgealign\[spark\]"):
        evaluate_spark(
            object(), make_judge(name="j", instructions=INSTRUCTIONS, model=ScriptedModel())
        )


# -- the UDF ----------------------------------------------------------------------------


def test_the_udf_gives_the_same_struct_for_with_column_users(
    spark: Any, server: FakeOpenAIServer
) -> None:
    judge = fake_judge(server)
    udf = to_spark_udf(judge)
    frame = qa_frame(spark).withColumnRenamed("inputs", "question")
    mine = by_id(frame.withColumn("correct", udf(inputs="question", outputs="outputs")))
    theirs = by_id(evaluate_spark(qa_frame(spark), judge))
    assert {i: r["value"] for i, r in mine.items()} == {i: r["value"] for i, r in theirs.items()}
    with pytest.raises(ConfigurationError, match="missing: outputs"):
        udf(inputs="question")
    method = judge.to_spark_udf(concurrency_per_task=4)  # the same, as a method
    again = by_id(frame.withColumn("correct", method(inputs="question", outputs="outputs")))
    assert {i: r["value"] for i, r in again.items()} == {i: r["value"] for i, r in mine.items()}
    assert method.settings.concurrency == 4


# -- aligned judges ---------------------------------------------------------------------


def test_an_aligned_judge_travels_with_its_memory(spark: Any, server: FakeOpenAIServer) -> None:
    judge = fake_judge(server)
    records = [
        LabeledRecord(id=f"r{i}", inputs=f"What is {i}+{i}?", outputs=f"{2 * i} is right",
                      label=i % 2 == 0, rationale="experts check the arithmetic")
        for i in range(6)
    ]  # fmt: skip
    reflection = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key=KEY)
    optimizer = MemAlignOptimizer(
        reflection_model=reflection, embedding_model=HashingEmbedder(64), retrieval_k=2
    )
    aligned = judge.align(records, optimizer)
    frame = qa_frame(spark, 6)
    local = aligned.evaluate(
        [{"inputs": r["inputs"], "outputs": r["outputs"]} for r in frame.orderBy("id").collect()]
    )
    rows = by_id(evaluate_spark(frame, aligned))
    assert [rows[i]["value"] for i in range(6)] == local.values
    # Rows 1, 2, 4 and 5 repeat stored records (same fields): flagged, so that agreement
    # leaves them out; rows 0 and 3 say "wrong" where the stored record says "right".
    held = {i: rows[i]["memorised_record_id"] for i in range(6)}
    assert held == {0: None, 1: "r1", 2: "r2", 3: None, 4: "r4", 5: "r5"}
    assert [fb.metadata.get("memorised_record_id") for fb in local] == list(held.values())


# -- agreement from distributed counts --------------------------------------------------


def test_agreement_from_counts_equals_the_in_process_report(spark: Any) -> None:
    rng = random.Random(3)
    labels = [rng.randint(1, 5) for _ in range(300)]
    verdicts = [min(5, max(1, x + rng.choice([-1, 0, 0, 1]))) for x in labels]
    verdicts[:7] = [None] * 7  # failed rows
    frame = spark.createDataFrame(
        [(str(i), s, j) for i, (s, j) in enumerate(zip(labels, verdicts, strict=True))],
        "id string, sme int, judge int",
    ).repartition(3)
    mine = agreement_spark(frame, "sme", "judge", id_col="id", n_bootstrap=2000)
    ref = agreement(verdicts, labels, ids=[str(i) for i in range(300)], n_bootstrap=2000)
    assert (
        (mine.n, mine.n_failed, mine.labels)
        == (ref.n, ref.n_failed, ref.labels)
        == (293, 7, (1, 2, 3, 4, 5))
    )
    assert mine.confusion == ref.confusion
    assert mine.accuracy == pytest.approx(ref.accuracy)
    assert mine.kappa_weighting == ref.kappa_weighting == "quadratic"
    assert mine.kappa == pytest.approx(ref.kappa, abs=1e-12)
    for label in ref.labels:
        assert mine.per_label[label].to_dict() == pytest.approx(ref.per_label[label].to_dict())
    assert sorted(mine.disagreeing_ids) == sorted(ref.disagreeing_ids)
    assert sorted(mine.failed_ids) == sorted(ref.failed_ids)
    # Same sampling distribution (multinomial cells vs pairs), different draws.
    assert mine.accuracy_ci == pytest.approx(ref.accuracy_ci, abs=0.02)
    assert mine.kappa_ci == pytest.approx(ref.kappa_ci, abs=0.03)


def test_agreement_reads_the_result_struct(spark: Any, server: FakeOpenAIServer) -> None:
    frame = qa_frame(spark, 12).withColumn(
        "sme", __import__("pyspark.sql.functions").sql.functions.lit(True)
    )
    judged = evaluate_spark(frame, fake_judge(server))
    report = agreement_spark(judged, "sme", "correct", id_col="id")
    assert report.n == 12 and report.confusion == ((0, 0), (4, 8))
    assert sorted(report.disagreeing_ids, key=int) == ["0", "3", "6", "9"]
    unnamed = agreement_spark(judged, "sme", "correct")
    assert unnamed.disagreeing_ids == () and any("id_col" in note for note in unnamed.notes)
    with pytest.raises(ConfigurationError, match=r"'nope'.*label_col"):
        agreement_spark(judged, "nope", "correct")


# -- aligning from a DataFrame ----------------------------------------------------------


def distiller(request: ChatRequest) -> dict[str, Any] | None:
    """One guideline per distillation batch, naming the batch's records: the memory then
    depends on how records were batched and in which order."""
    schema = request.json_schema or {}
    if "guidelines" not in json.dumps(schema):
        return verdict(request)  # type: ignore[return-value]
    ids = re.findall(r'"id": "(r\d+)"', request.last_user)
    return {"guidelines": [{"text": f"Rule learned from {' and '.join(ids)}.", "source_ids": ids}]}


def test_align_from_a_dataframe_equals_the_in_process_align(spark: Any) -> None:
    rows = [
        {"id": f"r{i:02d}", "inputs": f"What is {i}+{i}?", "outputs": f"{2 * i + i % 2}",
         "label": i % 2 == 0, "rationale": f"expert note {i}"}
        for i in range(11)
    ]  # fmt: skip
    frame = spark.createDataFrame(rows).repartition(3)  # shuffled: align_spark sorts by id
    with FakeOpenAIServer(reply=distiller) as fake:
        reflection = LiteLLMModel("openai:/fake", api_base=fake.base_url)

        def optimizer() -> MemAlignOptimizer:
            return MemAlignOptimizer(
                reflection_model=reflection, embedding_model=HashingEmbedder(64),
                max_records_per_batch=3, dedupe_threshold=0.99,
            )  # fmt: skip

        on_spark = align_spark(frame, fake_judge(fake), optimizer())
        distilled_on_spark = fake.stats["chat"]
        in_process = fake_judge(fake).align(rows, optimizer())
    assert distilled_on_spark == 4  # ceil(11 / 3) batches, one request each
    assert [g.text for g in on_spark.guidelines] == [
        "Rule learned from r00 and r01 and r02.",
        "Rule learned from r03 and r04 and r05.",
        "Rule learned from r06 and r07 and r08.",
        "Rule learned from r09 and r10.",
    ]
    mine, theirs = on_spark.to_dict()["content"], in_process.to_dict()["content"]
    for key in (
        "base_judge",
        "optimizer",
        "embedder",
        "guidelines",
        "guideline_vectors",
        "records",
    ):
        assert mine[key] == theirs[key], key
    assert on_spark.last_alignment is not None and in_process.last_alignment is not None
    spent, reference = on_spark.last_alignment.usage, in_process.last_alignment.usage
    assert (spent.calls, spent.prompt_tokens, spent.completion_tokens) == (
        reference.calls, reference.prompt_tokens, reference.completion_tokens,
    )  # fmt: skip


def test_align_from_a_dataframe_paces_each_task_to_its_share_of_the_limit(spark: Any) -> None:
    # 12 one-record batches, 12 Spark tasks, two at a time; the server admits 4 a second
    # (4 at once). Each Python worker keeps its half of the limit across its tasks.
    rows = [
        {"id": f"r{i:02d}", "inputs": f"What is {i}+{i}?", "outputs": f"{2 * i}",
         "label": i % 2 == 0}
        for i in range(12)
    ]  # fmt: skip
    frame = spark.createDataFrame(rows)

    def run(limit: RateLimit | None) -> tuple[dict[str, int], Any]:
        with FakeOpenAIServer(reply=distiller, requests_per_minute=240) as fake:
            reflection = LiteLLMModel("openai:/fake", api_base=fake.base_url)
            optimizer = MemAlignOptimizer(
                reflection_model=reflection, embedding_model=HashingEmbedder(64),
                max_records_per_batch=1,
            )  # fmt: skip
            aligned = align_spark(frame, fake_judge(fake), optimizer, rate_limit=limit)
            return dict(fake.stats), aligned

    stats, aligned = run(RateLimit(requests_per_minute=240))
    assert stats["chat"] == 12 and stats["rate_limited"] <= 1, stats
    assert aligned.last_alignment is not None and aligned.last_alignment.failed_batches == ()
    unpaced, _ = run(None)
    assert unpaced["rate_limited"] >= 3, unpaced


def test_align_from_a_dataframe_refuses_what_executors_cannot_rebuild(
    spark: Any, server: FakeOpenAIServer
) -> None:
    frame = spark.createDataFrame([{"id": "a", "inputs": "q", "outputs": "a", "label": True}])
    keyed = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key=KEY)
    with pytest.raises(ConfigurationError, match="model URI without an api_key"):
        align_spark(frame, fake_judge(server), MemAlignOptimizer(reflection_model=keyed))
    with pytest.raises(ConfigurationError, match=r"'key'.*id_col"):
        align_spark(frame, fake_judge(server), id_col="key")


def test_a_worker_keeps_the_last_judges_only(server: FakeOpenAIServer) -> None:
    from judgealign.integrations.spark._worker import payload_of, rebuild_judge

    shipped = [payload_of(fake_judge(server, description=f"v{i}")) for i in range(3)]
    first = rebuild_judge(*shipped[0])
    assert rebuild_judge(*shipped[0]) is first  # built once, then reused
    second, third = rebuild_judge(*shipped[1]), rebuild_judge(*shipped[2])
    assert rebuild_judge(*shipped[2]) is third and rebuild_judge(*shipped[1]) is second
    assert rebuild_judge(*shipped[0]) is not first  # the least recently used was let go
