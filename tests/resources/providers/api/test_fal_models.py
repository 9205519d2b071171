"""fal models by configuration: the packaged catalog, its checks, two models with other argument mappings
rendered through the parameterised emulator, and the fault matrix's exactly-once cells for a catalog model."""

import pytest

from devkit.emulators import FalEmulator, TaskScript
from resources.api_client.errors import ProviderHTTPError
from resources.api_client.tasks import idempotency_key
from resources.ledger import JobStatus, day_scope
from resources.pricing import PricesResource
from resources.providers.api.fal import FalClips
from resources.providers.api.fal_catalog import (
    FalCatalogError,
    default_catalog_text,
    load_catalog,
    packaged_catalog,
    parse_catalog,
)
from resources.routing import load_policy
from tests.resources.providers.api.api_fixtures import (
    EMULATED_OUTPUT_SHORT_SIDE,
    ProviderCase,
    log,
    make_request,
)
from tests.resources.providers.api.fault_matrix import FAULTS, run_cell

ENTRY = """models:
  demo:
    endpoint: fal-ai/demo/image-to-video
    model: demo-1
    price: pika_v2_2_720p
    duration: {argument: duration, choices: [5, 10], format: text}
"""


def fal_case(name: str, emulator: FalEmulator, tmp_path) -> ProviderCase:
    return ProviderCase(name, emulator, tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}")


@pytest.fixture
def fal(tmp_path):
    with FalEmulator(
        output_short_side=EMULATED_OUTPUT_SHORT_SIDE, script=TaskScript(running_s=0.02)
    ) as emulator:
        yield emulator


def test_every_packaged_model_has_a_price_and_routes_by_its_name():
    prices = PricesResource(measured_results=None).table
    names = sorted(packaged_catalog())
    assert {
        "pika",
        "kling_turbo",
        "kling_turbo_pro",
        "hailuo_fast",
        "veo_fast",
        "veo_lite",
        "wan_turbo",
    } <= set(names)
    for name, spec in packaged_catalog().items():
        assert spec.price in prices.api, name
        assert prices.providers[name].kind == "api" and prices.providers[name].stage == "clip", name
    assert load_policy(prices, None).providers("clip")  # the packaged policy, checked against that table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "    seed_argument: duration\n",
            "line 2, models.demo: .*two of our fields map onto the same argument",
        ),
        ("    arguments: {prompt: fixed}\n", "line 2, models.demo: .*would overwrite mapped ones"),
        (
            "    aspect_argument: aspect_ratio\n",
            "line 2, models.demo: .*needs `aspects` for each of 16:9, 9:16, 1:1",
        ),
        ("    colour: red\n", "line 7, models.demo.colour: Extra inputs are not permitted"),
        ("    arguments: {Bad-Name: 1}\n", r"line 7, models.demo.arguments.Bad-Name.*should match pattern"),
        ("    duration: {choices: [5]}\n", "line 7: duplicate key 'duration'"),
    ],
)
def test_a_bad_entry_names_the_file_line_and_key(change, message):
    with pytest.raises(FalCatalogError, match=rf"^models\.yaml {message}"):
        parse_catalog(ENTRY + change, source="models.yaml")


def test_a_huge_or_deep_catalog_is_refused_before_it_is_walked():
    with pytest.raises(FalCatalogError, match="models.yaml"):
        parse_catalog("a: &a [" + "*a, " * 10 + "]\n" + "x" * 300_000, source="models.yaml")


def test_lengths_bought_cover_the_loop_and_are_spelled_as_the_model_reads_them():
    catalog = packaged_catalog()
    assert [catalog["veo_fast"].duration.seconds_for(s) for s in (3, 4, 5, 8, 12)] == [4, 4, 6, 8, 8]
    assert catalog["veo_fast"].duration.encode(6) == "6s" and catalog["kling_turbo"].duration.encode(5) == "5"
    assert catalog["pika"].duration.encode(5) == 5
    assert catalog["wan_turbo"].duration.seconds_for(3) == 5


def test_pika_jobs_keep_the_identity_they_had_as_a_dedicated_provider(tmp_path):
    """Jobs in existing ledgers are found again (and never paid twice) after pika became a catalog entry."""
    provider = FalClips(
        model="pika", base_url="https://queue.fal.run", storage={"root": str(tmp_path)}, ledger={}, prices={}
    )
    request = make_request(duration_s=4.0, seed=3)
    params = provider.job_params(request)
    assert params["task"] == {"prompt": provider.prompt, "resolution": "720p", "duration": 5, "seed": 3}
    assert idempotency_key(request, "pika", params) == idempotency_key(request, provider.name, params)


def test_kling_turbo_sends_text_lengths_and_no_seed(fal, tmp_path):
    case = fal_case("kling_turbo", fal, tmp_path)
    result = case.provider().render_clip(make_request(duration_s=4.0, seed=9), log)
    task = next(iter(fal.tasks.values()))
    assert task.params["duration"] == "5" and "seed" not in task.params and task.params["cfg_scale"] == 0.5
    assert task.params["_app"] == "fal-ai/kling-video" and task.seconds == 5
    assert (result.cost.provider, result.cost.model, result.cost.api_usd) == (
        "kling_turbo",
        "kling-v2.5-turbo-std",
        0.21,
    )
    assert [round(c.usd, 6) for c in case.ledger().charges()] == [0.21]


def test_veo_fast_sends_its_aspect_and_buys_the_shortest_covering_length(fal, tmp_path):
    case = fal_case("veo_fast", fal, tmp_path)
    result = case.provider().render_clip(make_request(aspect="9:16", duration_s=5.0), log)
    task = next(iter(fal.tasks.values()))
    assert (task.params["aspect_ratio"], task.params["duration"], task.params["generate_audio"]) == (
        "9:16",
        "6s",
        False,
    )
    assert (result.clip.width, result.clip.height) == make_request(aspect="9:16").size
    assert result.cost.api_usd == pytest.approx(0.60)
    budget = case.ledger().budget(day_scope())
    assert (budget.reserved_usd, round(budget.spent_usd, 6)) == (0.0, 0.60)


def test_a_request_in_another_models_arguments_is_refused_unpaid(fal, tmp_path):
    """A catalog entry that spells the length as a number where the model wants text: fal answers 422, nothing is
    made, and the job closes unpaid with its reservation released."""
    text = default_catalog_text()
    wrong = text.replace("choices: [5, 10], format: text}", "choices: [5, 10], format: number}", 1)
    (tmp_path / "fal_models.yaml").write_text(wrong)
    assert load_catalog(str(tmp_path / "fal_models.yaml"))["kling_turbo"].duration.format == "number"
    case = fal_case("kling_turbo", fal, tmp_path)
    provider, request = case.provider(catalog_path=str(tmp_path / "fal_models.yaml")), make_request()
    with pytest.raises(ProviderHTTPError, match=r"422.*must be one of '5', '10'"):
        provider.render_clip(request, log)
    assert fal.submissions == 0
    ledger = case.ledger()
    job = ledger.job(idempotency_key(request, provider.name, provider.job_params(request)))
    assert job.status == JobStatus.FAILED and ledger.charges() == []
    assert ledger.budget(day_scope()).reserved_usd == 0.0


def test_an_unknown_model_makes_the_provider_unavailable_not_the_code_location(tmp_path):
    provider = FalClips(model="nope", api_key="k", storage={"root": str(tmp_path)}, ledger={}, prices={})
    availability = provider.availability()
    assert not availability.available and "fal model 'nope' is not in the catalog" in availability.reason


MATRIX_CELLS = [
    ("after create: 5xx", False),
    ("after create: dropped connection", True),
    ("mid-poll: 5xx", True),
    ("download: expired", False),
]


@pytest.mark.parametrize(
    ("fault_name", "killed"),
    MATRIX_CELLS,
    ids=[f"{f}-{'sigkill' if k else 'no kill'}" for f, k in MATRIX_CELLS],
)
def test_a_catalog_model_costs_at_most_one_task_and_exactly_what_was_billed(fault_name, killed, tmp_path):
    fault = next(fault for fault in FAULTS if fault.name == fault_name)
    result = run_cell("kling_turbo", fault, killed, f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path)
    assert result.tasks <= 1, result
    assert abs(result.ledger_usd - result.billed_usd) <= 2e-6, result
    assert result.overspend_usd == 0 and result.reserved_usd == 0, result
