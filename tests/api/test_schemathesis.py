"""Property-based run over /openapi.json (schemathesis, in process against the ASGI app).

Every operation gets a few generated requests (positive and negative data), authenticated
as an admin; the checks are that no response is a 5xx and that every response matches the
schema the document declares for its status code. Schemathesis' pytest plugin does not
run under this pytest, so the operations are driven through its Python API with
Hypothesis directly; the number of examples keeps the run bounded.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.api.conftest import Api

EXAMPLES = int(os.environ.get("NURTURE_SCHEMATHESIS_EXAMPLES", "5"))


def test_openapi_conformance(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    headers = api.headers("admin")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
                case.call_and_validate(
                    headers=headers, checks=[not_a_server_error, response_schema_conformance]
                )

            try:
                run()
            except Unsatisfiable:  # no negative data exists for an operation without inputs
                continue
            except Exception as exc:  # collect every operation's failure, then report
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations > 40
    assert not failures, "\n\n".join(failures)
