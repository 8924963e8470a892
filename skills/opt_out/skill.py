"""opt_out: rules that spot do-not-call requests in one turn of an outbound sales call.

Policy (what counts as an opt-out):

* **Opt-out** = the person asks not to be called or contacted again, to be removed from the list
  or to have their number deleted, says they are on a do-not-call list, or asks to unsubscribe /
  opt out. Any wording counts ("stop calling me", "take me off your list", "lose my number",
  "don't ever call back", "how did you get my number? delete it").
* **Not an opt-out**: a refusal of the offer ("not interested", "no thanks"); a time preference
  ("call me tomorrow", "don't call me before 9am", "don't call me until after the holidays"); a
  pause ("stop, let me think"); a name preference ("stop calling me sir"); removing something else
  ("remove the late fee", "take me off hold", "take me off the waitlist"); cancelling a product.
  A refusal is next_action's business, not this skill's: a refused lead may be called again later,
  an opted-out one never.

Confidence is the rules' confidence in the returned ``opted_out``:

* 0.97 - explicit opt-out wording matched (``opted_out=True``);
* 0.85 - harassment wording such as "stop bothering me" (``opted_out=True``);
* 0.70 - weak cue such as "leave me alone", "why do you keep calling me" (``opted_out=True``, so a
  low-confidence step can be escalated for a human or the planner to confirm);
* 0.60 - suspicious but not an opt-out on its own: "how did you get my number?", "wrong number",
  a bare "stop" (``opted_out=False``);
* 0.90 - nothing matched (``opted_out=False``).

Known limits (see evaluate.py for the numbers): on lines written after the rules and never tuned
on, about 4 opt-outs in 5 are caught; misses are unlisted wordings ("get rid of my number",
"remove this line from your lists"). Reported speech ("tell them to stop calling me") and names
the rules cannot know ("stop calling me dave") can fire falsely; so can "unsubscribe from the
add-on". Escalate low confidence, and add new misses to the test set.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import BaseModel, Field

from orchestrator.ports import Meaning
from orchestrator.skill import Batch, Predictions, Skill

__all__ = ["OptOut", "OptOutInput", "OptOutOutput", "detect", "normalise"]

#: Confidence tiers, described in the module docstring.
STRONG, HARASS, WEAK, SUSPICIOUS, CLEAN = 0.97, 0.85, 0.70, 0.60, 0.90


class OptOutInput(BaseModel):
    """One caller turn."""

    text: Annotated[str, Meaning.text()] = Field(
        description="what the person said in this turn (ASR transcript)"
    )


class OptOutOutput(BaseModel):
    """Whether the turn is a do-not-call / opt-out request."""

    opted_out: Annotated[bool, Meaning.flag("opted_out")] = Field(
        description="true when the person asked not to be contacted again: an opt-out or "
        "do-not-call request (stop calling me, take me off your list)"
    )


# --- normalisation -----------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
# Contractions with a straight, curly (mapped above) or missing apostrophe ("don't", "dont") become
# full words, so every rule only has to know "do not".
_CONTRACTIONS = [
    (
        re.compile(r"\b(do|does|did|is|are|was|were|have|has|would|should|could)(?:n't|nt)\b"),
        r"\1 not",
    ),
    (re.compile(r"\bwon'?t\b"), "will not"),
    (re.compile(r"\bcan'?t\b"), "cannot"),
    (re.compile(r"\bi'?m\b"), "i am"),
    (re.compile(r"\b(i|you|we|they)'ve\b"), r"\1 have"),
    (re.compile(r"\b(i|you|we|they)'ll\b"), r"\1 will"),
    (re.compile(r"\b(you|we|they)'re\b"), r"\1 are"),
]
# Sentence punctuation becomes a " . " clause break: patterns join words with single spaces, so
# they never match across "stop, let me think".
_CLAUSE_BREAK = re.compile(r"[.,!?;:()\"]+|\s-\s|\s+-+\s+")
_OTHER = re.compile(r"[^a-z0-9' .]+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lowercase, unify apostrophes, expand contractions, turn punctuation into " . " breaks."""
    text = _CLAUSE_BREAK.sub(" . ", text.lower().translate(_QUOTES))
    text = text.replace("-", " ")  # do-not-call, opt-out
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = _OTHER.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


# --- rules -------------------------------------------------------------------------------------

# Words that may follow "don't call me ..." and still mean "ever": the clause must end after them,
# which is what keeps "don't call me before 9am" and "don't call me bill anymore" out.
_OBJ = (
    r"(?: (?:me|us|this number|this phone|this line|here|this house"
    r"|my (?:cell|phone|number|house|home)))?"
)
_TAIL = (
    r"(?: (?:again|anymore|any more|back|ever|ever again|at all|please|period|no more"
    r"|in the future|from now on|going forward))*"
)
_END = r" ?(?:\.|$)"
_CONTACT_VERB = r"(?:call|phone|ring|contact|text|dial)"
_CALLING = r"(?:calling|phoning|ringing|contacting|texting|dialing|dialling)"
# "stop calling me sir" / "stop calling it a deal" are about a name, not about calls.
_ADDRESS = (
    r"(?:sir|ma'?am|madam|mister|mr|mrs|ms|miss|buddy|pal|honey|dear|sweetie|babe|bro|dude"
    r"|that|it|him|her|them|by)"
)
_LIST = (
    r"(?:lists?|database|system|records?|registry|register|files?|contacts?|(?:auto ?)?dialer"
    r"|marketing|campaigns?|calls)"
)
_DET = r"(?:your|the|this|that|whatever|all|any|all your|all of your|every)"
# Lists that are not a calling list.
_OTHER_LISTS = (
    r"(?:waiting|wait|guest|to do|todo|shopping|grocery|reminder|reminders|bucket|reading|play)"
)

STRONG_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "stop calling",
        re.compile(
            rf"(?<!do not )(?<!never )(?<!not )\b(?:stop|quit|cease|end) {_CALLING}\b"
            rf"(?! (?:me |us )?{_ADDRESS}\b)"
            # "stop calling me dave, my name's bob" (CLINC change_user_name) is a name too.
            r"(?!.*\b(?:my name|from now on|call me by)\b)"
        ),
    ),
    (
        "stop the calls",
        re.compile(
            r"\b(?:(?:stop|quit) (?:sending (?:me |us )?)?|end |no more |enough (?:with|of) )"
            r"(?:with )?(?:the |these |your |all |all the |all these |those |any )?"
            r"(?:phone |robo ?|sales |spam |marketing )?(?:calls|texts|messages)\b"
            # "no more calls after 6" is a time preference.
            r"(?! (?:after|before|until|till|at|on|during|between|today|tonight|this|next)\b)"
        ),
    ),
    (
        "stop you from calling",
        re.compile(
            r"\bstop (?:you|you guys|you people|your company|them|these people) (?:from )?"
            rf"{_CALLING}\b"
        ),
    ),
    (
        "do not call me (again)",
        # "you never call me back" and "i do not call people" are statements, not requests.
        re.compile(
            r"\b(?:(?<!\bi )(?<!\bwe )do not|(?<!\byou )(?<!\bi )(?<!\bwe )(?<!\bthey )never"
            r"|not to|to not|you not|do not you)(?: dare| ever)* "
            rf"{_CONTACT_VERB}{_OBJ}{_TAIL}{_END}"
        ),
    ),
    (
        "do not call list",
        re.compile(
            r"\b(?:do not call|no call|dnc) (?:list|lists|registry|register|database)\b|\bdnc\b"
        ),
    ),
    (
        "do not want calls",
        re.compile(
            r"\b(?:do not|never|no longer) (?:ever )?(?:want|wish|need) "
            r"(?:to get |to receive )?(?:any |another |one more )?"
            r"(?:more |further |other )?(?:of )?(?:your |these |the |those )?"
            r"(?:phone |sales )?(?:calls?|contact)\b"
        ),
    ),
    (
        "do not want you calling",
        re.compile(
            r"\b(?:do not|never|no longer) want (?:you|you guys|you people|anyone|your company) "
            rf"(?:{_CALLING}|to {_CONTACT_VERB})\b"
        ),
    ),
    (
        "do not want to be contacted",
        re.compile(
            r"\b(?:do not|never|no longer) (?:want|wish) to be (?:called|contacted|phoned|bothered)"
            rf"(?: (?:again|anymore|by you|by your company|ever again|by anyone))*{_END}"
        ),
    ),
    (
        "never hear from you again",
        re.compile(
            r"\bnever (?:want to )?hear from (?:you|your company|any of you)(?: \w+)? again\b"
        ),
    ),
    (
        "off your list",
        re.compile(
            rf"\b(?:me|us|myself|number|name|details|i want|want|get|go|be) off (?:of )?{_DET} "
            rf"(?!{_OTHER_LISTS}\b)(?:\w+ ){{0,2}}{_LIST}\b"
        ),
    ),
    (
        "remove me from your list",
        re.compile(
            r"\b(?:remove|removed|delete|deleted|take|taken|erase|get|scratch|cross|strike|drop"
            r"|wipe|purge|pull)"
            rf"(?: \w+){{0,3}} (?:me|us|myself|number|name|details|information|info) "
            rf"(?:from|out of) {_DET} "
            rf"(?!{_OTHER_LISTS}\b)(?:\w+ ){{0,2}}{_LIST}\b"
        ),
    ),
    (
        "take me off",
        re.compile(
            r"\b(?:(?:remove|delete|drop) (?:me|us)|(?:take|get|scratch|cross) (?:me|us) off)"
            rf"(?: please)?{_END}"
        ),
    ),
    (
        "delete my number",
        re.compile(
            r"\b(?:remove|delete|erase|lose|forget|wipe|scrub|purge|destroy) (?:all )?(?:of )?"
            r"(?:my|our|this) (?:phone |cell |home |personal |contact )?"
            r"(?:number|details|info|information|data)\b"
        ),
    ),
    (
        "my number removed",
        re.compile(
            r"\b(?:my|our|this) (?:phone |cell )?number (?:removed|deleted|erased|taken off)\b"
        ),
    ),
    (
        "be removed from your list",
        re.compile(
            r"\bbe (?:removed|taken off|taken out|deleted|dropped) (?:from|of|off) "
            rf"{_DET} (?!{_OTHER_LISTS}\b)(?:\w+ ){{0,2}}{_LIST}\b"
        ),
    ),
    (
        "revoke consent",
        re.compile(r"\b(?:revoke|withdraw|cancel|take back) (?:my |our |any |all )?consent\b"),
    ),
    (
        "unsubscribe / opt out",
        re.compile(r"\b(?:unsubscribe|unsubscribing|unsub|opt (?:me |us )?out)\b"),
    ),
    (
        "no consent",
        re.compile(
            r"\b(?:do not|did not|never) (?:consent|agree) to (?:these |your |any |the |being )?"
            r"(?:calls|called|contact|contacted)\b"
        ),
    ),
    (
        "be taken off",
        re.compile(r"\bbe (?:taken|removed|crossed|scratched|struck) off\b(?! (?:hold|speaker))"),
    ),
    (
        "number question + delete",
        re.compile(
            r"\b(?:how|where) did you (?:even )?get (?:my|this|our) (?:phone )?number\b.*"
            r"\b(?:delete|remove|erase|lose|take|forget)\b"
        ),
    ),
]

HARASS_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "stop bothering me",
        re.compile(
            r"(?<!do not )\b(?:stop|quit) "
            r"(?:bothering|harassing|bugging|pestering|hassling|spamming) (?:me|us)\b"
        ),
    ),
    (
        "last time you call",
        re.compile(
            rf"\blast time (?:you|you people|you guys|anyone) (?:{_CONTACT_VERB}|{_CALLING})\b"
        ),
    ),
    (
        "harassment / complaint threat",
        re.compile(
            r"\b(?:harassment|harassing me|report(?:ing)? you|(?:ftc|fcc|attorney general)\b"
            r"|(?:call|calling) the (?:police|cops)|sue you|suing you)"
        ),
    ),
]

WEAK_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("leave me alone", re.compile(r"\bleave (?:me|us) alone\b")),
    (
        "why do you keep calling",
        re.compile(rf"\b(?:keep|keeps|always) {_CALLING} (?:me|us|here)\b"),
    ),
    (
        "called me n times",
        re.compile(r"\b(?:called|rang|phoned) (?:me|us|here) (?:\w+ ){0,2}times\b"),
    ),
    ("if you call again", re.compile(r"\bif you (?:ever )?call (?:me |us |here )?again\b")),
    (
        "sick of the calls",
        re.compile(r"\b(?:sick|tired) (?:and tired )?of (?:these|your|the|all) (?:\w+ )?calls\b"),
    ),
]

SUSPICIOUS_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "how did you get my number",
        re.compile(r"\b(?:how|where) did you (?:even )?get (?:my|this|our) (?:phone )?number\b"),
    ),
    ("who gave you my number", re.compile(r"\bwho gave you (?:my|this|our) number\b")),
    ("wrong number", re.compile(r"\bwrong number\b")),
    ("bare stop", re.compile(r"^(?:please )?stop(?: \. stop)*(?: please)?(?: \.)?$")),
]

_TIERS = (
    (STRONG_RULES, True, STRONG),
    (HARASS_RULES, True, HARASS),
    (WEAK_RULES, True, WEAK),
    (SUSPICIOUS_RULES, False, SUSPICIOUS),
)


def detect(text: str) -> tuple[bool, float, str | None]:
    """(opted_out, confidence, name of the rule that decided or None) for one raw turn."""
    norm = normalise(text or "")
    for rules, verdict, confidence in _TIERS:
        for rule_name, pattern in rules:
            if pattern.search(norm):
                return verdict, confidence, rule_name
    return False, CLEAN, None


class OptOut(Skill):
    """Rule-based do-not-call detector; see the module docstring for the policy."""

    name: ClassVar[str] = "opt_out"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Detects do-not-call / opt-out requests in one caller turn of an outbound call (rules, "
        "microseconds). Input text: str. Output opted_out: bool - true when the person asks not "
        "to be called or contacted again, to be taken off the list, to have their number deleted, "
        "to unsubscribe, or says they are on a do-not-call list. A plain refusal ('not "
        "interested'), a time preference ('call me tomorrow', 'not before 9am'), a pause ('stop, "
        "let me think') or a name preference is NOT an opt-out. Confidence 0.97 explicit match, "
        "0.85 harassment wording, 0.70 weak cue flagged true ('leave me alone'), 0.60 suspicious "
        "but false ('how did you get my number?'), 0.90 clean negative. Run it on every turn "
        "before next_action and honour a true result."
    )
    Input: ClassVar[type[BaseModel]] = OptOutInput
    Output: ClassVar[type[BaseModel]] = OptOutOutput
    num_cpus: ClassVar[float] = 0.25
    relative_cost: ClassVar[float] = 1.0

    def predict(self, batch: Batch) -> Predictions:
        """One opted_out flag and one confidence per text of the batch."""
        flags: list[bool] = []
        confidence: list[float] = []
        for text in batch["text"]:
            opted_out, conf, _ = detect(text)
            flags.append(opted_out)
            confidence.append(conf)
        return Predictions({"opted_out": flags}, confidence)
