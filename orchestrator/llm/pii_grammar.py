"""Street addresses, organisations and names found by their shape, without a model or a gazetteer.

:func:`grammar_spans` finds, by family:

* ``ADDRESS``: a house number, an optional direction, one to four capitalised words (or ``5th``)
  and a street suffix (``Street``/``St``, ``Avenue``, ``Court``, ``Ridge``, ... the USPS list,
  plural forms too), then an optional unit (``Apt 4B``, ``Suite 300``, ``#7``) and an optional
  tail: ``, City, ST 12345``, ``, City, ST``, ``, City`` (before punctuation or a linking word),
  a ZIP or a UK/Canadian/Irish postcode; without a known suffix only before such a full tail. Also P.O. boxes, US military addresses (``PSC 1234, Box 5678, APO AE
  12345``), European forms (``Hauptstraße 5``, ``Rua Augusta 27``, ``12 rue de la Paix``) and,
  after "live at", "moved to", "ship to"..., a house number and capitalised words without suffix;
  lower-case ``12 baker street`` only with a common suffix.
* ``ORG``: capitalised words ending in a company suffix (``Inc``, ``LLC``, ``Ltd``, ``PLC``,
  ``Group``, ``and Sons``, ``Bank``, ``Credit Union``, ``GmbH``...), ``Smith, Jones and Lee`` and
  double-barrelled ``Powell-Lane`` (a company or a surname: private either way).
* ``PERSON``: capitalised names after a title (``Mr``, ``Dr``..., kept in the span), a relation
  (``my wife``, ``neighbour``, ``landlord``...) or an introduction (``my name is``, ``this is``,
  ``ask for``, ``spoke with``, ``per``...); before ``speaking``/``here`` or ``is my daughter``;
  first and last name before a verb (``Ana Sousa asked``); and (:func:`conjoined_names`) a name
  joined by "and"/"or" to one already found.

These complement the NER model (:mod:`orchestrator.llm.ner`): it misses names in odd positions and
never tags a whole address; these miss names without a cue. Capitalisation carries most of the
signal, so lower-case transcripts get little from here beyond suffixed street addresses.
"""

from __future__ import annotations

import re
from functools import lru_cache

from orchestrator.llm.pii_span import PRIORITY, EntityType, Span

__all__ = ["NOT_NAMES", "conjoined_names", "grammar_spans"]


def _wordlist(words: str) -> list[str]:
    return words.split()


# fmt: off
#: USPS street suffixes (and common abbreviations); matched with an optional plural "s".
_SUFFIXES = _wordlist(
    "allee alley aly annex anx arcade arc avenue ave av bayou bayoo beach bch bend bnd bluff blf "
    "bottom btm boulevard blvd branch br bridge brg brook brk burg bypass byp camp cp canyon cyn "
    "cape cpe causeway cswy center ctr centre circle cir cliff clf close club clb common commons "
    "corner cor course crse court ct cove cv creek crk crescent cres crest crst crossing xing "
    "crossroad curve dale dl dam divide dv drive dr estate est expressway expy extension ext fall "
    "ferry fry field fld flat flt ford frd forest frst forge frg fork frk fort ft freeway fwy "
    "garden gdn gardens gateway gtwy glen gln green grn grove grv harbor hbr harbour haven hvn "
    "heights hts highway hwy hill hl hollow holw inlet island is isle junction jct key ky knoll "
    "knl lake lk land landing lndg lane ln light lgt loaf lf lock lck lodge ldg loop mall manor "
    "mnr meadow mdw mews mill ml mission msn motorway mtwy mount mt mountain mtn neck nck orchard "
    "orch oval overpass opas park parkway pkwy pass passage path pike pine pne place pl plain pln "
    "plaza plz point pt port prt prairie pr radial radl ramp ranch rnch rapid rpd rest rst ridge "
    "rdg rise river riv road rd route rte row rue run shoal shl shore shr skyway spring spg spur "
    "square sq station sta stravenue stra stream strm street st summit smt terrace ter "
    "throughway trwy trace trce track trak trafficway trfy trail trl tunnel tunl turnpike tpke "
    "underpass upas union un valley vly via viaduct vis view vw village vlg ville vl vista walk "
    "wall way well wells wl wharf wynd yard gate parade esplanade promenade quay wood croft chase "
    "drove garth turn circuit cct line cross concourse amble"
)
_COMMON_SUFFIXES = _wordlist(
    "street st avenue ave road rd lane ln drive dr boulevard blvd court ct terrace parkway pkwy "
    "circle cir highway hwy place pl crescent close"
)
_STATES = _wordlist(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP FM MH PW AA AE "
    "AP "  # + Canadian provinces and Australian states
    "ON QC BC AB MB SK NS NB NL PE YT NT NU NSW VIC QLD TAS ACT"
)
_STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
    "Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
    "Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
    "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
    "Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
    "West Virginia|Wisconsin|Wyoming"
)
_ORG_SUFFIXES = (
    r"Inc\.?|Incorporated|LLC|L\.L\.C\.|Ltd\.?|Limited|PLC|plc|Corp\.?|Corporation|Co\.|Company|"
    r"Group|Holdings|Partners|Associates|Bank|Credit Union|Insurance|Industries|Enterprises|"
    r"Solutions|Services|Systems|Technologies|Consulting|Foundation|Trust|Realty|Properties|"
    r"Motors|Labs|GmbH|AG|KG|KGaA|SE|S\.?A\.?S?|SARL|S\.?p\.?A\.?|S\.?L\.?|B\.?V\.?|N\.?V\.?|"
    r"LLP|LP|& Co\.?|and Sons|& Sons|and Daughters|Bros\.?|Brothers|GbR|OHG|mbH|e\.V\.|UG|eG|"
    r"Stiftung|Sp\. z o\.o\.|Sp\.[jkp]\.|[Ss]\.[Cc]\.|S\.A\. de C\.V\.|Lt[ée]e|S\.R\.L\.|SRL|Oy|AB|ASA|A/S"
)
_RELATIONS = (
    "wife|husband|spouse|partner|ex|neighbou?r|son|daughter|brother|sister|brother-in-law|"
    "sister-in-law|mother-in-law|father-in-law|son-in-law|daughter-in-law|mother|mom|mum|father|"
    "dad|stepdad|stepmom|stepson|stepdaughter|friend|colleague|coworker|co-worker|boss|manager|"
    "supervisor|landlord|landlady|tenant|roommate|flatmate|housemate|cousin|uncle|aunt|nephew|"
    "niece|grandson|granddaughter|grandmother|grandfather|grandma|grandpa|fianc[ée]e?|girlfriend|"
    "boyfriend|caregiver|carer|nurse|assistant|secretary|accountant|lawyer|attorney|agent|"
    "guarantor|co-?signer|beneficiary|executor|representative|rep|guy|contact|child|kid|parent|"
    "technician|doctor|dentist|advisor|adviser|broker|employer|employee|customer|client|patient|"
    "account holder|cardholder|holder|owner|resident|occupant|sender|recipient|driver"
)
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Madam|Mister|Rev|Fr|Sgt|Capt|Officer|Judge)\.?"
_INTRO = (
    r"(?i:my name is|my name's|name is|name's|this is|it's|it is|i'm|i am|speaking with|speak "
    r"(?:to|with)|talk to|ask for|asking for|named|called|signed by|attention|attn:?|c/o|care of|"
    r"dear|hi|hello|thanks|thank you|tell|ask|contact|call|reach|email|text|per|spoke (?:to|with)|"
    r"spoken (?:to|with)|talked (?:to|with)|authori[sz]ed by|approved by|requested by|on behalf of|"
    r"according to|cc|under|in the name of|with|(?:send|mail|forward|give|pass)(?: \w+){0,2} to|"
    r"is this|was this|belongs to|addressed to|name:|(?:mail|letter|message|post|call) for)"
)
_TITLE_WORD = re.compile(_TITLE)
#: what a person does in a call note: "Ana Sousa asked ..." (names before a verb, two words or more)
_VERBS = (
    r"(?:asked|said|says|called|calls|wants|wanted|told|tells|needs|needed|will|would|can|could|"
    r"has|had|lives|lived|moved|mentioned|confirmed|requested|paid|signed|agreed|refused|"
    r"disputed|authori[sz]ed|approved|emailed|texted|phoned|left|visited|owes|owns|works|worked|"
    r"reports|reported|claims|claimed|called)"
)
#: capitalised words that are no names: function words, days, months, call-centre nouns
NOT_NAMES = frozenset(_wordlist(
    """i i'm i'll i've i'd a an the my your his her our their this that these those it its he she
    we they you me him us them yes no ok okay please thanks thank hello hi hey sorry sir madam dear
    monday tuesday wednesday thursday friday saturday sunday january february march april may june
    july august september october november december today tomorrow yesterday tonight morning
    evening afternoon customer service support account card bank team office billing sales
    department manager premium gold silver platinum basic plus unlimited internet tv wi-fi email
    mail phone number apt suite unit christmas easter new year what when where why how who which
    there here not just also but and or so if then because can could would should do does did is
    are was were have has had let send call use put ask try text charge wire for our someone
    social driver taxpayer verification zip iban ssn dl ip it's that's mr mrs ms miss dr prof
    answer give choose return reply skill items item note per"""
))
# fmt: on


def grammar_spans(text: str, detect: frozenset[str]) -> list[Span]:
    """Addresses, organisations and cued names in ``text`` (families in ``detect``)."""
    spans: list[Span] = []
    patterns = _patterns()
    for kind in ("ADDRESS", "ORG", "PERSON"):
        if kind not in detect:
            continue
        for pattern, group in patterns[kind]:
            for m in pattern.finditer(text):
                start, end = m.span(group)
                if kind == "PERSON":
                    start, end = _trim_name(text, start, end)
                    # a bare "Ana Sousa asked": only as a first and a last name
                    if group == "m" and len(text[start:end].split()) < 2:
                        continue
                if end > start:
                    spans.append(Span(start, end, kind, PRIORITY[kind]))
    return spans


def conjoined_names(text: str, spans: list[Span]) -> list[Span]:
    """Names joined by "and"/"or"/"&" to a name already found ("Sean and <PERSON> both live")."""
    out = []
    for span in spans:
        if span.kind != "PERSON":
            continue
        if m := _AFTER_NAME.match(text, span.end):
            start, end = _trim_name(text, *m.span("n"))
            out.append(Span(start, end, "PERSON", PRIORITY["PERSON"]))
        if m := _BEFORE_NAME.search(text[max(0, span.start - 80) : span.start]):
            offset = max(0, span.start - 80)
            start, end = _trim_name(text, offset + m.start("n"), offset + m.end("n"))
            out.append(Span(start, end, "PERSON", PRIORITY["PERSON"]))
    return [s for s in out if s.end > s.start]


def _trim_name(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop leading/trailing words that are not names ("Monday", "The")."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while (
        words
        and words[0].group(0).casefold().strip(".,") in NOT_NAMES
        and not _TITLE_WORD.fullmatch(words[0].group(0))  # "Mr Charles Buckley" keeps its "Mr"
    ):
        words.pop(0)
    while words and words[-1].group(0).casefold().strip(".,") in NOT_NAMES:
        words.pop()
    if not words:
        return start, start
    return start + words[0].start(), start + words[-1].end()


def _alternation(words: list[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


# --- the building blocks (strings; compiled once, on first use, by _patterns) -------------------

_NUMBER = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?"
_DIRECTION = (
    r"(?:[NSEW]\.?|[NS][EW]\.?|North|South|East|West|Northeast|Northwest|Southeast|Southwest)"
)
_WORD = r"(?:[A-Z][a-zA-Z'\-]*\.?|\d{1,3}(?:st|nd|rd|th)|(?:de|la|del|of|the)(?=[ \t]+[A-Z]))"
_UNIT = (
    r"(?:,?[ \t]*(?i:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|bldg|building|dept|"
    r"lot|space|spc|trlr|box)\.?[ \t]*#?[ \t]*[A-Za-z0-9\-]{1,6}|,?[ \t]*#[ \t]?[A-Za-z0-9\-]{1,6})"
)
_CITY = r"[A-Z][a-zA-Z'\.\-]+(?:[ \t][A-Z][a-zA-Z'\.\-]+){0,2}"
_STATE = rf"(?:{'|'.join(_STATES)}|{_STATE_NAMES})"
_ZIPCODE = r"\d{5}(?:-\d{4})?|\d{4}"  # US; four digits: Australia and much of Europe
#: UK, Canada, Ireland (Eircode)
_POSTCODE = (
    r"[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}|[A-Z]\d[A-Z][ ]?\d[A-Z]\d"
    r"|[AC-FHKNPRTV-Y]\d{2}[ ]?[AC-FHKNPRTV-Y0-9]{4}"
)
_LINK = (
    r"(?:on|and|but|in|for|last|next|please|if|near|before|after|instead|since|so|or|with|is|"
    r"was|to|by|got|has|had|will|would|can|said)"
)
_BREAK = r"(?:,[ \t]*|[ \t]*\n[ \t]*)"  # a comma, or the line break Faker's addresses have
#: ", City, ST 12345" and shorter (", City" only before punctuation or a linking word)
_TAIL = (
    rf"(?:(?:{_BREAK}|[ \t]+)(?:{_CITY},?[ \t]*)?(?:{_STATE},?[ \t]+)?"
    rf"(?:{_ZIPCODE}|(?:{_POSTCODE})(?:[ \t]+{_CITY})?)(?![\w])"
    rf"|{_BREAK}{_CITY},?[ \t]*{_STATE}(?![\w])"
    rf"|{_BREAK}{_CITY}(?=[ \t]*(?:[.,;:!?)]|$|\n|[ \t]+{_LINK}\b)))"
)
_UNIT_WORD = r"(?i:flat|apartment|apt|unit|suite|studio|room|level|lvl)\.?"
#: a house number (after an optional unit: "Apt. 5, 12 ..."), or a flat number standing for it
#: ("Flat 4, Hilary Pike")
_HOUSE = (
    rf"(?:(?:{_UNIT_WORD}[ \t]*\d{{1,5}}[A-Za-z]?,?\s+)?{_NUMBER}"
    rf"|{_UNIT_WORD}[ \t]*\d{{1,5}}[A-Za-z]?(?:,|[ \t]*\n))"
)
_NAME_WORD = (
    r"(?:[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'\u2019]+(?:-[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'\u2019]+)?|[A-Z][A-Z'\u2019]+(?=[ \t,.]|$)"
    r"|Mc[A-Z][a-z]+|O'[A-Z][a-z]+)"
)
_PARTICLE = r"(?:de|van|von|der|den|da|del|della|di|du|dos|das|la|le|bin|al|ter|ten|y)"
_NAME_SUFFIX = r"(?:,?[ \t]+(?:Jr\.?|Sr\.?|II|III|IV|MD|DDS|DVM|PhD|Esq\.?)(?![\w]))?"
_NAME_WORDS = rf"{_NAME_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*(?:{_NAME_WORD}|[A-Z]\.))"
_NAME = rf"{_NAME_WORDS}{{0,3}}{_NAME_SUFFIX}"


def _street() -> str:
    """Number, direction, capitalised words, a known suffix (capitalised or upper case: a
    lower-case "is" is no Island), direction."""
    cased = [w.capitalize() for w in _SUFFIXES] + [w.upper() for w in _SUFFIXES]
    suffix = rf"(?:{_alternation(cased)})[sS]?\.?"
    return (
        rf"{_HOUSE},?[ \t\n]+(?:{_DIRECTION}[ \t]+)?(?:{_WORD}[ \t]+){{1,4}}{suffix}(?![\w])"
        rf"(?:[ \t]+{_DIRECTION}(?![\w]))?"
    )


def _address_patterns() -> list[tuple[str, int | str]]:
    # no known suffix, but ", City, ST 12345" or ", City 1234" after it: an address all the same
    unsuffixed = (
        rf"{_HOUSE}[ \t]+(?:{_WORD}[ \t]+){{0,3}}{_WORD}{_BREAK}{_CITY},?[ \t]*"
        rf"(?:{_STATE},?[ \t]+)?(?:{_ZIPCODE}|{_POSTCODE})(?![\w])"
    )
    lower = rf"{_NUMBER}[ \t]+(?:[a-z]+[ \t]+){{1,3}}(?:{_alternation(_COMMON_SUFFIXES)})\.?"
    po_box = r"(?i:p\.?[ \t]?o\.?[ \t]?box|post office box)[ \t]*#?[ \t]*\d{1,6}"
    military = (
        r"(?:(?:PSC|Unit|CMR)[ \t]+\d{3,5},?[ \t]+Box[ \t]+\d{3,5}|(?:USNS|USS|USNV|USCGC)[ \t]+"
        r"[A-Z][a-z]+)(?:,?[ \t]*(?:APO|FPO|DPO)[ \t]+A[AEP][ \t]+\d{5})?"
    )
    name = r"[A-ZÀ-Ý][\w'\-]+(?:[ \t]+(?:[A-ZÀ-Ý][\w'\-]+|de|da|do|dos|das|del|la|le|du|des|di|della))*"
    europe = (
        rf"(?:[A-ZÄÖÜ][\wäöüß]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm)[ \t]+"
        rf"\d{{1,4}}[a-z]?(?:/\d+)?"
        rf"|(?:Rua|Avenida|Av\.|Calle|Via|Viale|Piazza|Rue|Largo|Travessa|Praça|Paseo|Carrer)[ \t]+"
        rf"{name},?[ \t]+(?:n\.?º?[ \t]*)?\d{{1,5}}[A-Za-z]?"
        rf"|\d{{1,4}},?[ \t]+(?i:rue|avenue|boulevard|place|chemin|allée|impasse|quai)[ \t]+"
        rf"{name})(?:,?[ \t]*\d{{4,5}}(?:-\d{{3}})?[ \t]+[A-Z][\w\-]+)?"
    )
    cue = (
        r"(?i:live at|lives at|living at|live on|address is|moved to|move to|ship(?:ped)? (?:it )?to|"
        r"deliver(?:ed)? (?:it )?to|send (?:it |them )?to|mail (?:it )?to|located at|residing at|"
        r"stay(?:ing)? at)[ \t]+"
    )
    cued = rf"{cue}(?P<a>{_NUMBER}[ \t]+{_WORD}(?:[ \t]+{_WORD}){{0,3}})"
    return [
        (rf"(?<![\w\-]){_street()}{_UNIT}?{_TAIL}?", 0),
        (rf"(?<![\w\-]){unsuffixed}", 0),
        (rf"(?<![\w\-]){lower}(?![\w]){_UNIT}?{_TAIL}?", 0),
        (rf"{po_box}{_TAIL}?", 0),
        (rf"\b{military}", 0),
        (europe, 0),
        (rf"{cued}{_UNIT}?{_TAIL}?", "a"),
    ]


def _org_patterns() -> list[tuple[str, int | str]]:
    cap = r"[A-Z][\w'\-]*"
    pair = r"[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
    return [
        # "Powell-Lane": a double-barrelled name; a company or a surname, private either way
        (r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)?-[A-Z][a-z]{2,}(?:[A-Z][a-z]+)?\b", 0),
        (
            rf"\b(?:{cap}\.?[ \t,&]+(?:(?:and|&|of|the|de|und|et)[ \t]+)?){{1,4}}(?:{_ORG_SUFFIXES})(?![\w])",
            0,
        ),
        (rf"\b{pair}, {pair} and {pair}\b", 0),  # "Garcia, Lopez and Lee"
    ]


def _person_patterns() -> list[tuple[str, int | str]]:
    relation = rf"(?i:\b(?:{_RELATIONS}))(?:'s)?(?:[ \t]+name)?[,:]?[ \t]+(?:(?i:is|was|named|called)[ \t]+)?"
    whose = r"(?:is|was)[ \t]+(?i:my|our|his|her|their)[ \t]+"
    return [
        (rf"\b(?P<n>{_TITLE}[ \t]+{_NAME})", "n"),
        (rf"{relation}(?P<n>{_NAME})", "n"),
        (rf"\b{_INTRO},?[ \t]+(?P<n>{_NAME})", "n"),
        (rf"(?P<n>{_NAME}),?[ \t]+(?i:speaking|here|calling)\b", "n"),
        (rf"\b(?P<m>{_NAME_WORDS}{{1,3}})[ \t]+{_VERBS}\b", "m"),
        (rf"(?P<n>{_NAME})[ \t]+{whose}(?i:{_RELATIONS})\b", "n"),
    ]


@lru_cache(maxsize=1)
def _patterns() -> dict[EntityType, list[tuple[re.Pattern[str], int | str]]]:
    """Every family's compiled patterns, with the group that holds the value (0: all of it)."""
    families = {
        "ADDRESS": _address_patterns(),
        "ORG": _org_patterns(),
        "PERSON": _person_patterns(),
    }
    return {
        kind: [(re.compile(p), group) for p, group in patterns]  # type: ignore[misc]
        for kind, patterns in families.items()
    }


_AFTER_NAME = re.compile(rf"[ \t]+(?:and|or|&)[ \t]+(?P<n>{_NAME})")
_BEFORE_NAME = re.compile(rf"(?<![\w'])(?P<n>{_NAME})[ \t]+(?:and|or|&)[ \t]+$")
