"""The PII guard: real Presidio recognizers, a real HTTP stub on loopback, no other network."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from orchestrator.errors import LLMUnavailable, RunError
from orchestrator.llm.gateway import Budget, LLMGateway, Provider
from orchestrator.llm.privacy import (
    KnownValues,
    PIIGuard,
    PrivacyViolation,
    guarded_complete,
    is_local,
    redact_file,
    redact_messages,
    safe_repr,
)
from orchestrator.testing import Reply, StubLLMServer

# --- no network but loopback --------------------------------------------------------------------


def _loopback(host: Any) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any name lookup or connection beyond loopback fails loudly and is recorded; the test fails
    at teardown even if the caller swallowed the error (tldextract falls back silently)."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host.decode() if isinstance(host, bytes) else host):
            attempts.append(f"getaddrinfo {host}")
            raise OSError(f"test: network access to {host!r} is forbidden")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _loopback(address[0]):
            attempts.append(f"connect {address}")
            raise OSError(f"test: connection to {address!r} is forbidden")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


@pytest.fixture(scope="module")
def guard() -> PIIGuard:
    guard = PIIGuard()
    guard.warm()
    return guard


# --- seeded call turns --------------------------------------------------------------------------

CUSTOMERS = [
    KnownValues(
        name="Maria Fernandes",
        phone="+351 912 345 678",
        email="maria.fernandes@example.pt",
        address="Rua Augusta 27, 1100-048 Lisboa",
    ),
    KnownValues(
        name="Peter Müller",
        phone="+49 30 12345678",
        email="p.mueller@example.de",
        address="Hauptstraße 5, 10115 Berlin",
    ),
    KnownValues(
        name="Emily Clarke",
        phone="+44 20 7946 0958",
        email="emily.clarke@example.co.uk",
        address="221B Baker Street, London NW1 6XE",
    ),
    KnownValues(
        name="Daniel O'Brien",
        phone="+1 (415) 555-0132",
        email="dan.obrien@example.com",
        address="1600 Amphitheatre Parkway, Mountain View, CA 94043",
    ),
]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "4012888888881881"]
IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "PT50000201231234567890154"]
IPS = ["192.168.10.24", "2001:db8:85a3::8a2e:370:7334"]

# (customer index, turn text): names in any case, phones in many formats, card numbers, IBANs and
# e-mails the customer never gave us (found by the pattern recognizers), addresses as known.
TURNS: list[tuple[int, str]] = [
    (0, "Hello, this is Maria Fernandes, you can call me back on +351912345678."),
    (0, "my number is 912 345 678 and my email is maria.fernandes@example.pt"),
    (0, "I moved to Rua Augusta 27, 1100-048 Lisboa last month, MARIA FERNANDES speaking"),
    (0, "pay with card 4111 1111 1111 1111 please, and call 00351 912-345-678 if it fails"),
    (0, "fernandes here again, my IBAN is PT50000201231234567890154"),
    (1, "Guten Tag, Peter Müller hier, Rückruf bitte unter 030 12345678"),
    (1, "Herr Mueller, Hauptstrasse 5, 10115 Berlin, mail p.mueller@example.de"),
    (1, "IBAN DE89 3704 0044 0532 0130 00 and card 5500-0000-0000-0004 for peter"),
    (1, "you can also try +49 (0)30 1234 5678 or write to peter.m@firma-example.de"),
    (2, "Hi, Emily Clarke calling about the order, my phone is 020 7946 0958"),
    (2, "please send it to 221B Baker Street, London NW1 6XE, emily"),
    (2, "Ms clarke prefers +44 (0)20 7946 0958 or emily.clarke@example.co.uk"),
    (2, "my card is 378282246310005 and IBAN GB82 WEST 1234 5698 7654 32"),
    (2, "the router at 192.168.10.24 keeps dropping, call 0044 20 7946 0958"),
    (3, "Daniel O'Brien here, reach me at (415) 555-0132"),
    (3, "it's dan, number 415.555.0132, email Dan.OBrien@example.com"),
    (3, "ship to 1600 Amphitheatre Parkway, Mountain View, CA 94043 for daniel o'brien"),
    (3, "card 4012888888881881, backup phone +1-415-555-0132"),
    (3, "the server 2001:db8:85a3::8a2e:370:7334 belongs to O'BRIEN, call 4155550132"),
    (3, "Mr O'Brien says hi, his wife uses jane.doe@example.org and +1 212 555 0199"),
]

PHONE_NSN = {
    "912345678",
    "3012345678",
    "2079460958",
    "4155550132",
    "2125550199",
}


def _raw_values() -> list[str]:
    """Every seeded string, as it might appear: whole values and their parts."""
    values: list[str] = [*CARDS, *IBANS, *IPS, "peter.m@firma-example.de", "jane.doe@example.org"]
    for known in CUSTOMERS:
        assert known.name and known.email and known.address
        values += [known.name, *known.name.split(), known.email, known.address]
        values += [p.strip() for p in known.address.split(",")]
    values += ["Mueller", "Hauptstrasse 5"]
    emails = [v for v in values if "@" in v]
    values += [part for email in emails for part in email.split("@")]  # no half e-mails either
    return [v for v in values if len(v) >= 3]


def _digit_runs(text: str) -> list[str]:
    return [re.sub(r"\D", "", m) for m in re.findall(r"\+?\d[\d\s().\-/]*\d", text)]


def _assert_clean(text: str) -> None:
    """No seeded value, in any case or digit formatting, in ``text``."""
    folded = text.casefold()
    for value in _raw_values():
        assert value.casefold() not in folded, "a raw value left the machine"
    secrets = PHONE_NSN | {re.sub(r"\D", "", c) for c in CARDS}
    secrets |= {re.sub(r"\D", "", i) for i in IBANS}
    for run in _digit_runs(text):
        for secret in secrets:
            assert secret not in run, "a phone, card or IBAN (digits) left the machine"
    all_digits = re.sub(r"\D", "", re.sub(r"<[A-Z]+_\d+>", " ", text))
    for secret in secrets:
        assert secret not in all_digits


def _sent_text(stub: StubLLMServer) -> list[str]:
    """Each chat request as it arrived: raw body and the decoded message contents."""
    texts = []
    for request in stub.chat_requests:
        contents = [str(m.get("content")) for m in request.json["messages"]]
        texts.append(request.body.decode() + "\n" + "\n".join(contents))
    return texts


def _echo(request: dict[str, Any]) -> str:
    """A big model that answers with the placeholders it was given."""
    placeholders = re.findall(r"<[A-Z]+_\d+>", request["messages"][-1]["content"])
    return "I will call " + " and ".join(dict.fromkeys(placeholders)) if placeholders else "ok"


async def _no_sleep(_: float) -> None:
    return None


def _gateway(*providers: Provider) -> LLMGateway:
    return LLMGateway(list(providers), sleep=_no_sleep)


SYSTEM = {"role": "system", "content": "You are a call-centre assistant. Be brief."}


def test_seeded_pii_never_reaches_the_stub_and_answers_come_back_restored(guard: PIIGuard) -> None:
    with StubLLMServer(default=_echo) as stub:
        gateway = _gateway(Provider(name="big", base_url=stub.base_url, model="m"))

        async def run() -> list[tuple[str, str, dict[str, str]]]:
            out = []
            for who, text in TURNS:
                known = CUSTOMERS[who]
                messages = [SYSTEM, {"role": "user", "content": text}]
                answer = await guarded_complete(
                    gateway, messages, policy="redact", known=known, budget=Budget(),
                    purpose="escalation", guard=guard,
                )  # fmt: skip
                _, mapping = redact_messages(messages, known, guard=guard)
                out.append((text, answer.text, mapping))
            await gateway.aclose()
            return out

        with structlog.testing.capture_logs() as logs:
            answers = asyncio.run(run())
        sent = _sent_text(stub)

    assert len(sent) == len(TURNS)
    for body in sent:
        _assert_clean(body)
    _assert_clean(json.dumps(logs, default=str))  # logs hold counts, never values
    for text, answer, mapping in answers:
        assert "<" not in answer, answer
        assert mapping, f"nothing redacted in {text!r}"
        for value in mapping.values():  # every redacted value is back, spelled as in the turn
            assert value in text and value in answer
    # spot checks: the values the model referred to are the customer's own
    assert "Maria Fernandes" in answers[0][1] and "+351912345678" in answers[0][1]
    assert "4111 1111 1111 1111" in answers[3][1]
    assert "DE89 3704 0044 0532 0130 00" in answers[7][1]


def test_one_conversation_keeps_placeholders_stable(guard: PIIGuard) -> None:
    known = CUSTOMERS[0]
    history: list[dict[str, Any]] = [
        SYSTEM,
        {"role": "user", "content": "This is Maria Fernandes, call me on 912 345 678"},
        {"role": "assistant", "content": "Thanks Maria, noted."},
        {"role": "user", "content": [{"type": "text", "text": "yes, +351 912-345-678, Maria"}]},
    ]
    redacted, mapping = redact_messages(history, known, guard=guard)
    assert redacted[1]["content"] == "This is <PERSON_1>, call me on <PHONE_1>"
    assert redacted[2]["content"] == "Thanks <PERSON_2>, noted."
    assert redacted[3]["content"][0]["text"] == "yes, <PHONE_1>, <PERSON_2>"
    assert history[1]["content"].startswith("This is Maria")  # the input is not changed
    assert guard.restore("Call <PERSON_2> at <PHONE_1>", mapping) == "Call Maria at 912 345 678"


class Callback(BaseModel):
    say: str
    phone: str
    address: str


def test_structured_answers_are_restored_inside_json(guard: PIIGuard) -> None:
    known = CUSTOMERS[3]
    reply = {"say": "Bye <PERSON_1>", "phone": "<PHONE_1>", "address": "<ADDRESS_1>"}
    with StubLLMServer(default=reply) as stub:
        gateway = _gateway(Provider(name="big", base_url=stub.base_url, model="m"))
        text = "Daniel O'Brien, (415) 555-0132, 1600 Amphitheatre Parkway, Mountain View, CA 94043"
        answer = gateway_answer = asyncio.run(
            _complete(gateway, text, known, schema=Callback, policy="redact")
        )
        _assert_clean(_sent_text(stub)[0])
    assert gateway_answer.parsed == Callback(
        say="Bye Daniel O'Brien",
        phone="(415) 555-0132",
        address="1600 Amphitheatre Parkway, Mountain View, CA 94043",
    )
    assert json.loads(answer.text)["say"] == "Bye Daniel O'Brien"


async def _complete(
    gateway: LLMGateway,
    text: str,
    known: KnownValues | None,
    *,
    policy: Any,
    schema: type[BaseModel] | None = None,
    local: Any = is_local,
) -> Any:
    try:
        return await guarded_complete(
            gateway, [{"role": "user", "content": text}], policy=policy, known=known,
            schema=schema, budget=Budget(), purpose="test", local=local,
        )  # fmt: skip
    finally:
        await gateway.aclose()


# --- policies -----------------------------------------------------------------------------------


def test_local_only_with_only_remote_providers_is_blocked_and_sends_nothing(
    no_network: list[str],
) -> None:
    remote = Provider(name="openai", base_url="https://api.openai.example/v1", model="gpt")
    with pytest.raises(PrivacyViolation) as caught:
        asyncio.run(_complete(_gateway(remote), TURNS[0][1], CUSTOMERS[0], policy="local_only"))
    assert caught.value.code == "privacy_blocked" and isinstance(caught.value, RunError)
    assert "api.openai.example" in str(caught.value) and "Maria" not in str(caught.value)
    assert no_network == []


def test_local_only_skips_remote_providers_and_sends_raw_to_local_ones() -> None:
    remote = Provider(name="openai", base_url="https://api.openai.example/v1", model="gpt")
    with StubLLMServer(default=_echo) as stub:
        near = Provider(name="near", base_url=stub.base_url, model="m")
        answer = asyncio.run(
            _complete(_gateway(remote, near), TURNS[0][1], CUSTOMERS[0], policy="local_only")
        )
        assert "Maria Fernandes" in _sent_text(stub)[0]  # never left the machine: as is
    assert answer.provider == "near"


def test_allow_sends_raw() -> None:
    with StubLLMServer(default="fine") as stub:
        provider = Provider(name="big", base_url=stub.base_url, model="m")
        asyncio.run(_complete(_gateway(provider), TURNS[3][1], CUSTOMERS[0], policy="allow"))
        assert "4111 1111 1111 1111" in _sent_text(stub)[0]


def test_default_policy_is_per_provider_local_raw_remote_redacted(guard: PIIGuard) -> None:
    with StubLLMServer(default=Reply.error(503)) as near, StubLLMServer(default=_echo) as far:
        gateway = _gateway(
            Provider(name="near", base_url=near.base_url, model="m", max_attempts=1),
            Provider(name="far", base_url=far.base_url, model="m"),
        )
        answer = asyncio.run(
            _complete(
                gateway, TURNS[9][1], CUSTOMERS[2], policy=None, local=lambda p: p.name == "near"
            )
        )
        assert "Emily Clarke" in _sent_text(near)[0]  # the local primary saw the real text
        _assert_clean(_sent_text(far)[0])  # the remote fallback only placeholders
    assert answer.provider == "far" and "Emily Clarke" in answer.text


def test_every_route_failing_names_every_provider() -> None:
    with (
        StubLLMServer(default=Reply.error(503)) as near,
        StubLLMServer(default=Reply.error(503)) as far,
    ):
        gateway = _gateway(
            Provider(name="near", base_url=near.base_url, model="m", max_attempts=1),
            Provider(name="far", base_url=far.base_url, model="m", max_attempts=1),
        )
        with pytest.raises(LLMUnavailable) as caught:
            asyncio.run(
                _complete(gateway, "hi", None, policy=None, local=lambda p: p.name == "near")
            )
    assert set(caught.value.errors) == {"near", "far"}


def test_a_loopback_proxy_declared_remote_and_a_strict_provider_get_placeholders(
    guard: PIIGuard,
) -> None:
    """ "Local" is not decided by host alone, and a provider's own policy is honoured (#16)."""
    with StubLLMServer(default=_echo) as proxy, StubLLMServer(default=_echo) as strict:
        fronting_cloud = Provider(name="proxy", base_url=proxy.base_url, model="m", local=False)
        assert not is_local(fronting_cloud)
        asyncio.run(_complete(_gateway(fronting_cloud), TURNS[9][1], CUSTOMERS[2], policy=None))
        _assert_clean(_sent_text(proxy)[0])
        with pytest.raises(PrivacyViolation):  # local_only refuses it, loopback or not
            asyncio.run(
                _complete(_gateway(fronting_cloud), "hi", CUSTOMERS[2], policy="local_only")
            )
        careful = Provider(name="strict", base_url=strict.base_url, model="m", privacy="redact")
        asyncio.run(_complete(_gateway(careful), TURNS[9][1], CUSTOMERS[2], policy="allow"))
        _assert_clean(_sent_text(strict)[0])
    with pytest.raises(ValueError, match="privacy"):
        Provider(name="x", base_url="http://127.0.0.1:1/v1", model="m", privacy="sometimes")


def test_is_local() -> None:
    for url, local in [
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://10.0.0.5:8000/v1", False),
        ("https://api.openai.com/v1", False),
    ]:
        assert is_local(Provider(name="p", base_url=url, model="m")) is local


# --- detection details --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["+351 912 345 678", "+351912345678", "00351 912 345 678", "912-345-678", "912.345.678",
     "(+351) 912 345 678", "912345678"],
)  # fmt: skip
def test_known_phone_in_any_formatting(guard: PIIGuard, written: str) -> None:
    red = guard.redact(f"ring {written} today", KnownValues(phone="912 345 678"))
    assert red.text == "ring <PHONE_1> today", red.text


def test_email_validation_uses_the_bundled_suffix_list_only(no_network: list[str]) -> None:
    fresh = PIIGuard(phone_regions=("NL",))  # new recognizers, built under the network guard
    red = fresh.redact("write to a.b@example.co.uk or to x@not-a-tld.invalidtld")
    assert red.text == "write to <EMAIL_1> or to x@not-a-tld.invalidtld"
    assert no_network == []


def test_the_network_guard_would_catch_a_suffix_list_download(no_network: list[str]) -> None:
    """The check above means something: tldextract's usual set-up reaches out, and is caught."""
    import tldextract

    online = tldextract.TLDExtract(
        suffix_list_urls=("https://publicsuffix.org/list/public_suffix_list.dat",), cache_dir=None
    )
    assert online("a.b@example.co.uk").fqdn == "example.co.uk"  # it fell back to the snapshot
    assert any("publicsuffix.org" in a for a in no_network)
    no_network.clear()


def test_reprs_and_safe_repr_never_show_values(guard: PIIGuard) -> None:
    known = CUSTOMERS[0]
    red = guard.redact(TURNS[0][1], known)
    for shown in (repr(known), repr(red), safe_repr(TURNS[1][1], known)):
        _assert_clean(shown)
    assert safe_repr("x" * 500).endswith("…") and len(safe_repr("x" * 500)) == 200


def test_restore_tolerates_how_models_rewrite_placeholders(guard: PIIGuard) -> None:
    mapping = {"<PERSON_1>": "Ana", "<PHONE_1>": "912 345 678", "<ADDRESS_1>": 'Rua "A" 1'}
    text = "<person_1>, [PHONE_1], PHONE_1, < PERSON_1 >, <PERSON_9>"
    assert guard.restore(text, mapping) == "Ana, 912 345 678, 912 345 678, Ana, <PERSON_9>"
    assert guard.restore('{"a": "<ADDRESS_1>"}', mapping, json_escape=True) == (
        '{"a": "Rua \\"A\\" 1"}'
    )
    assert guard.restore_value({"k": ["<PERSON_1>", 3]}, mapping) == {"k": ["Ana", 3]}


# --- the CLI ------------------------------------------------------------------------------------


def test_redact_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines: list[Any] = [
        {
            "id": 1,
            "text": "Maria here, 912 345 678",
            "name": "Maria Fernandes",
            "phone": "912345678",
        },
        {"id": 2, "text": "card 4111 1111 1111 1111, mail a@example.com", "name": None},
        "not json {",
        {"id": 4, "other": "no text field"},
        "[1, 2]",
        {"id": 6, "text": "what is the weather tomorrow"},
    ]
    src.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n",
        encoding="utf-8",
    )
    summary = redact_file(src, dst, "text", ["name,phone"])
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert out[0] == {**lines[0], "text": "<PERSON_1> here, <PHONE_1>"}
    assert out[1]["text"] == "card <CARD_1>, mail <EMAIL_1>"
    assert [o.get("error", {}).get("code") for o in out] == [
        None, None, "invalid_json", "missing_field", "not_an_object", None,
    ]  # fmt: skip
    assert out[2]["line"] == 3 and out[5] == lines[5]
    assert summary["lines"] == 6 and summary["redacted"] == 3 and summary["errors"] == 3
    assert summary["lines_with_pii"] == 2
    assert summary["spans"] == {"CARD": 1, "EMAIL": 1, "PERSON": 1, "PHONE": 1}


def test_redact_command_registered_with_typer(tmp_path: Path) -> None:
    from orchestrator.cli.redact import redact_command

    app = typer.Typer()
    app.command("redact")(redact_command)
    app.command("noop")(lambda: None)  # two commands: `redact` stays a subcommand
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"utterance": "I'm Ana Sousa", "customer": "Ana Sousa"}) + "\n")
    args = ["redact", "--input", str(src), "--output", str(dst), "--field", "utterance"]
    result = CliRunner().invoke(app, [*args, "--known", "customer=name"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["spans"] == {"PERSON": 1}
    assert json.loads(dst.read_text())["utterance"] == "I'm <PERSON_1>"
    missing = CliRunner().invoke(app, ["redact", "--input", str(tmp_path / "no"), "-o", str(dst)])
    assert missing.exit_code == 2


# --- throughput ---------------------------------------------------------------------------------


def test_redaction_throughput_on_clinc150(guard: PIIGuard) -> None:
    from skills.data import clinc150_eval

    utterances = [text for text, _ in clinc150_eval("test")][:1000]
    known = CUSTOMERS[0]
    started = time.perf_counter()
    spans = sum(sum(guard.redact(u, known).counts.values()) for u in utterances)
    rate = len(utterances) / (time.perf_counter() - started)
    print(
        f"\nredact throughput: {rate:.0f} utterances/s on 1,000 CLINC150 test items, {spans} spans"
    )
    assert rate > 200
    assert spans <= 10  # CLINC150 holds no real PII: next to no false positives
