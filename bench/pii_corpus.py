"""A seeded corpus of outbound-call sentences with PII at exact character spans (Faker-filled).

    >>> from pii_corpus import generate
    >>> sentences = generate(1000, seed=0)
    >>> s = sentences[0]; [(e.kind, s.text[e.start : e.end] == e.value) for e in s.entities]

Each sentence comes from one of many templates written like a call-centre note or a customer's
words (a spouse, a neighbour, a second account...), with ``{KIND}`` slots filled by values in many
formats: names from several Faker locales, US and European phone formats with extensions and
spoken separators, card numbers plain/spaced/dashed, SSNs with and without dashes, driver licences
of several states, street addresses with units and city/state/ZIP (US, and some UK, Irish,
Canadian, Australian, New Zealand ones), IBANs, IPs, e-mails, companies.
About one sentence in ten holds no PII at all but has capitalised words (precision check). The
corpus is generated, never committed: ``bench/pii_guard.py`` and ``tests/test_pii_guard.py`` make
it from a seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = ["KINDS", "STRUCTURED", "Entity", "Sentence", "generate"]

#: every kind the corpus seeds; STRUCTURED ones are found by patterns, the rest need NER/heuristics
KINDS = (
    "PERSON",
    "ORG",
    "ADDRESS",
    "PHONE",
    "EMAIL",
    "CARD",
    "SSN",
    "LICENSE",
    "IBAN",
    "IP",
    "ZIP",
)
STRUCTURED = ("PHONE", "EMAIL", "CARD", "SSN", "LICENSE", "IBAN", "IP", "ZIP")


@dataclass(frozen=True)
class Entity:
    """One seeded value: its kind, its span in the sentence and the text there."""

    kind: str
    start: int
    end: int
    value: str


@dataclass(frozen=True)
class Sentence:
    """A generated sentence and every PII value seeded in it."""

    text: str
    entities: tuple[Entity, ...]


# fmt: off
TEMPLATES = [
    # spouse, family, neighbours
    "My wife {PERSON} usually handles the bills, you can reach her on {PHONE}.",
    "Please speak to my husband, {PERSON}, he's home after six.",
    "Our neighbour {PERSON} at {ADDRESS} got your letter by mistake.",
    "{PERSON} is my daughter, she moved to {ADDRESS} last spring.",
    "The account is in my son's name, {PERSON}, and his number is {PHONE}.",
    "I'm calling for my mother, {PERSON}; her social security number is {SSN}.",
    "You spoke with my partner {PERSON} yesterday about the renewal.",
    "If I'm not in, leave a message with {PERSON} next door.",
    "My brother-in-law {PERSON} co-signed the loan, his email is {EMAIL}.",
    "Can you send a copy to my sister {PERSON} at {EMAIL}?",
    "Dad's new place is {ADDRESS}, please update it.",
    "My father {PERSON} passed away in March, his card {CARD} should be closed.",
    # the customer themself
    "Hi, this is {PERSON} calling back about my order.",
    "Yes, {PERSON} speaking, who is this?",
    "My name is {PERSON} and I live at {ADDRESS}.",
    "{PERSON} here, I got a voicemail from {ORG} about a late payment.",
    "Hello, it's {PERSON} from {ORG}, returning your call on {PHONE}.",
    "I'm {PERSON}, the account holder, and I want to dispute a charge.",
    "Put it under {PERSON}, that's the name on the lease.",
    # second account, cards, banks
    "I have a second account, the card number is {CARD} and it expires next year.",
    "Charge the balance to my other card, {CARD}, not the one on file.",
    "The refund should go to IBAN {IBAN}, account holder {PERSON}.",
    "Wire it to {IBAN} please, that's my savings account at {ORG}.",
    "My debit card {CARD} was declined at the pharmacy.",
    "Use card {CARD}, billing address {ADDRESS}.",
    "The joint account with {PERSON} still shows card {CARD}.",
    "Her IBAN is {IBAN} and the bank is {ORG}.",
    # identity numbers
    "For verification, my SSN is {SSN}.",
    "Social security number {SSN}, date of birth in June.",
    "His social is {SSN} if you need it for the credit check.",
    "You can verify me with my driver's license number {LICENSE}.",
    "Driver license {LICENSE}, issued in Ohio, expires in two years.",
    "I can read you my licence number, it's {LICENSE}.",
    "The DL number on file is {LICENSE} but I renewed it.",
    "Taxpayer ID? Use my SSN: {SSN}.",
    # addresses
    "Please ship the replacement to {ADDRESS}.",
    "We moved, the new mailing address is {ADDRESS}.",
    "The technician should come to {ADDRESS} on Tuesday morning.",
    "Send the paperwork to {PERSON}, {ADDRESS}.",
    "My old address was {ADDRESS} but mail still goes there.",
    "The zip code is {ZIP} if that helps.",
    "It's in the {ZIP} zip code, near the school.",
    "Billing zip: {ZIP}.",
    # phones
    "Call me back at {PHONE} after five.",
    "My cell is {PHONE}, the landline is {PHONE}.",
    "The best number to reach {PERSON} is {PHONE}.",
    "Text {PHONE} if nobody picks up.",
    "You have the wrong number, mine is {PHONE} not the one ending in 12.",
    "Her work phone: {PHONE}.",
    "Try {PHONE}, that's my office line.",
    # e-mail, IPs, orgs
    "Email me at {EMAIL} with the invoice.",
    "The confirmation went to {EMAIL} instead of my inbox.",
    "I work at {ORG} and my work address is {EMAIL}.",
    "Someone logged into my account from {IP} last night.",
    "The router at {IP} keeps rebooting, my IT guy {PERSON} checked it.",
    "My employer, {ORG}, pays the premium directly.",
    "I used to bank with {ORG} before switching.",
    "The contractor was {ORG}, their rep was {PERSON}.",
    "Please contact {PERSON} at {ORG}, phone {PHONE}, email {EMAIL}.",
    "Our landlord {PERSON} from {ORG} will confirm the address {ADDRESS}.",
    "The session came from {IP} and the alert went to {EMAIL}.",
    "Attorney {PERSON} represents the estate, reach her office at {PHONE}.",
    "Dr. {PERSON} signed the form; the clinic is at {ADDRESS}.",
    "Ask for {PERSON} in accounting, extension included: {PHONE}.",
    # agent notes, terse
    "Note from agent: customer asked us to remove {PERSON} from the account; new contact {PHONE}.",
    "Per {PERSON}, the property at {ADDRESS} is now vacant.",
    "{ORG} called on behalf of {PERSON} regarding card {CARD}.",
    "Verified identity with SSN {SSN} and billing address {ADDRESS}.",
    "Spoke with {PERSON} ({EMAIL}); escalate to {ORG} if unresolved.",
    "Callback requested: {PHONE}, ask for {PERSON}.",
    "Second account holder: {PERSON}, mailing address {ADDRESS}, phone {PHONE}.",
    "The neighbour, {PERSON}, said the parcel for {ADDRESS} was left with {ORG}.",
    "Customer disputes a charge from {ORG} on card {CARD}.",
    "Emergency contact {PERSON} can be reached on {PHONE} or {EMAIL}.",
    "{PERSON} and {PERSON} both live at {ADDRESS}.",
    "Transfer authorised by {PERSON} of {ORG}.",
]

#: sentences without PII but with capitalised words: anything redacted here is a false positive
NO_PII = [
    "I called on Monday about the Premium plan and nobody answered.",
    "Yes, please cancel the Gold membership before the end of December.",
    "We spoke to Customer Service twice in April and the issue is still open.",
    "The Wi-Fi box from last Christmas still blinks red.",
    "Is the Easter discount still valid on the Family bundle?",
    "I paid 250 dollars on the 3rd and got a receipt.",
    "The Internet went down on Friday night around 9 PM.",
    "Thank you, that's all for today. Have a good weekend!",
    "I'd like to upgrade to Unlimited Plus if the price is right.",
    "Please call back next Thursday, I'm at work until 5.",
    "No, I never ordered the Smart Home package.",
    "My order number is 4471 and it shipped in January.",
    "The bill went up by 12 percent since the New Year.",
    "Can I pay in two installments of 75 dollars?",
    "The French and Spanish channels are missing from my TV plan.",
]
# fmt: on

_STATES_SPOKEN = ("Ohio", "Texas", "California", "New York", "Florida")
_NAME_LOCALES = (
    ("en_US", 50), ("en_GB", 10), ("es_ES", 6), ("de_DE", 6), ("fr_FR", 6), ("it_IT", 6),
    ("pt_BR", 6), ("en_IN", 5), ("nl_NL", 5),
)  # fmt: skip


_OTHER_ENGLISH = ("en_AU", "en_CA", "en_IE", "en_NZ")


class _Values:
    """Fills one slot kind with a value, in one of several formats."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        locales = [loc for loc, _ in _NAME_LOCALES] + [*_OTHER_ENGLISH, "de_DE", "fr_FR"]
        self.fake = Faker(list(dict.fromkeys(locales)))
        self.fake.seed_instance(seed)
        self.us = self.fake["en_US"]
        self.rng = random.Random(seed)

    def __call__(self, kind: str) -> str:
        return str(getattr(self, kind.lower())())

    def _locale(self) -> str:
        names, weights = zip(*_NAME_LOCALES, strict=True)
        return self.rng.choices(names, weights)[0]

    def person(self) -> str:
        f = self.fake[self._locale()]
        r = self.rng.random()
        if r < 0.6:
            return f"{f.first_name()} {f.last_name()}"
        if r < 0.75:
            return f"{f.first_name()} {self.rng.choice('ABCDEFGHJKLMNPRSTW')}. {f.last_name()}"
        if r < 0.9:
            return f.name()
        return f.first_name()

    def org(self) -> str:
        r = self.rng.random()
        if r < 0.7:
            return self.us.company()
        if r < 0.8:
            return self.fake["en_GB"].company()
        if r < 0.85:
            return self.fake[self.rng.choice(_OTHER_ENGLISH)].company()
        return self.rng.choice(
            [
                f"{self.us.last_name()} Credit Union",
                f"{self.us.city()} Bank",
                f"{self.us.last_name()} & Partners",
                self.fake["de_DE"].company(),
            ]
        )

    def address(self) -> str:
        r = self.rng.random()
        us = self.us
        if r < 0.3:
            return us.street_address()
        if r < 0.55:
            return f"{us.street_address()}, {us.city()}, {us.state_abbr()} {us.zipcode()}"
        if r < 0.75:
            return us.address().replace("\n", ", ")
        if r < 0.85:
            unit = self.rng.choice(["Apt 4B", "Unit 12", "#7", "Suite 300", "Floor 2"])
            return f"{us.building_number()} {us.street_name()}, {unit}, {us.city()}"
        if r < 0.9:
            return self.fake["en_GB"].address().replace("\n", ", ")
        if r < 0.96:
            return self.fake[self.rng.choice(_OTHER_ENGLISH)].address().replace("\n", ", ")
        return f"{us.building_number()} {us.street_name()}"

    def phone(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return self.us.phone_number()
        if r < 0.6:
            return self.fake["en_GB"].phone_number()
        if r < 0.65:
            return self.fake[self.rng.choice(["de_DE", "fr_FR", "es_ES", "it_IT"])].phone_number()
        if r < 0.7:
            return (
                self.us.msisdn()
                if r < 0.67
                else self.fake[self.rng.choice(_OTHER_ENGLISH)].phone_number()
            )
        a, b, c = self.rng.randint(201, 989), self.rng.randint(200, 999), self.rng.randint(0, 9999)
        forms = [
            f"+1 ({a}) {b}-{c:04d}", f"{a} {b} {c:04d}", f"{a}-{b}-{c:04d} ext. {self.rng.randint(2, 999)}",
            f"{a} dash {b} dash {c:04d}", f"{a}.{b}.{c:04d}", f"1-{a}-{b}-{c:04d}",
            f"({a}) {b}-{c:04d} x{self.rng.randint(10, 9999)}", f"+44 7{self.rng.randint(100, 999)} {self.rng.randint(100000, 999999)}",
        ]  # fmt: skip
        return self.rng.choice(forms)

    def email(self) -> str:
        f = self.fake[self._locale()]
        return self.rng.choice([f.email, f.free_email, f.company_email])()

    def card(self) -> str:
        raw = self.us.credit_card_number()
        r = self.rng.random()
        if r < 0.4:
            return raw
        sep = " " if r < 0.75 else "-"
        if len(raw) == 15:
            return sep.join([raw[:4], raw[4:10], raw[10:]])
        return sep.join(raw[i : i + 4] for i in range(0, len(raw), 4))

    def ssn(self) -> str:
        raw = self.us.ssn()
        r = self.rng.random()
        if r < 0.6:
            return raw
        return raw.replace("-", "") if r < 0.85 else raw.replace("-", " ")

    def license(self) -> str:
        rng = self.rng
        digits = lambda n: "".join(str(rng.randint(0, 9)) for _ in range(n))  # noqa: E731
        letter = lambda: rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")  # noqa: E731
        forms = [
            lambda: letter() + digits(7),
            lambda: digits(9),
            lambda: f"{letter()}{digits(3)}-{digits(3)}-{digits(2)}-{digits(3)}-{digits(1)}",
            lambda: f"{letter()}{digits(3)}-{digits(4)}-{digits(4)}",
            lambda: letter() + letter() + digits(6),
            lambda: digits(8),
            lambda: f"{letter()}{digits(12)}",
        ]
        return rng.choice(forms)()

    def iban(self) -> str:
        raw = self.fake[self.rng.choice(["en_GB", "de_DE", "fr_FR", "en_US"])].iban()
        if self.rng.random() < 0.5:
            return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))
        return raw

    def ip(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return self.us.ipv4_public()
        return self.us.ipv4_private() if r < 0.75 else self.us.ipv6()

    def zip(self) -> str:
        return self.us.zipcode() if self.rng.random() < 0.8 else self.us.zipcode_plus4()


_SLOT = re.compile(r"\{([A-Z]+)\}")


def generate(n: int, seed: int = 0, *, no_pii_share: float = 0.1) -> list[Sentence]:
    """``n`` sentences from a seeded draw of templates and values (same seed, same corpus)."""
    values = _Values(seed)
    rng = random.Random(seed + 1)
    out: list[Sentence] = []
    for _ in range(n):
        if rng.random() < no_pii_share:
            out.append(Sentence(rng.choice(NO_PII), ()))
            continue
        template = rng.choice(TEMPLATES)
        text, entities, last = "", [], 0
        for slot in _SLOT.finditer(template):
            text += template[last : slot.start()]
            value = values(slot.group(1))
            entities.append(Entity(slot.group(1), len(text), len(text) + len(value), value))
            text += value
            last = slot.end()
        text += template[last:]
        if rng.random() < 0.1:  # a spoken state now and then, outside any span
            text += f" I'm in {rng.choice(_STATES_SPOKEN)} this week."
        out.append(Sentence(text, tuple(entities)))
    return out
