"""Reading an analyst's goal against the dataset's schema: which question type, which columns, or a decline.

:func:`interpret` turns a goal and the dataset's profile (:class:`~stepcrew.engines.facts.DatasetProfile`) into a
:class:`Question` (a typed analysis spec) or a :class:`~stepcrew.models.Decline`. Deterministic rules, no model:

- **declines first**: forecasts/predictions ("forecast", "predict", "next year", "will be"), causes ("why", "what
  caused"), a measure the goal names after an aggregate word ("average price") that no column matches, a goal with
  no dataset, and a goal no rule fits;
- **columns** are matched by their name's tokens (``body_mass_g`` -> body, mass) and a small thesaurus of analysts'
  words (heaviest -> mass/weight, wettest -> precipitation/rain, fuel-efficient -> miles/gallon/mpg...); category
  values by the profile's most frequent values (and common company names for tickers);
- **question types**, in this order: correlation, share, recommend, top-N, trend, extremes, filter + aggregate,
  group comparison (see :class:`Question.kind`).

Aggregates: the mean unless the goal says total/sum (SUM), median (MEDIAN) or how many/count (COUNT); averages skip
missing values, as SQL's AVG does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from stepcrew.engines.facts import ColumnProfile, DatasetProfile
from stepcrew.models import Decline

Kind = Literal["group_comparison", "trend", "extremes", "top_n", "share", "correlation", "filter_aggregate",
               "recommend", "profile"]
Agg = Literal["avg", "sum", "median", "count", "max", "min", "stddev", "variance"]

NEEDS_PROVIDER = "A model provider (--provider anthropic, openai or bedrock) would be needed for that."

# ------------------------------------------------------------------------------------------------ vocabulary
_STOP = set("""a an and are as at be been being between both but by can could did do does doing for from had has
have how i if in into is it its me more most much my no not of on or our out over per please should so some such
than that the their them then there these they this those to under up us was we were what when where which while who
whom why will with within would you your also any each every other about across all among give show tell find make
list one two three four five six seven eight nine ten key figures figure numbers number report data dataset
recorded observed see let get got value values me i'd like""".split())
#: Analysts' words -> column-name tokens they point at.
_THESAURUS: dict[str, set[str]] = {
    "heavy": {"mass", "weight"}, "heavier": {"mass", "weight"}, "heaviest": {"mass", "weight"},
    "light": {"mass", "weight"}, "lighter": {"mass", "weight"}, "lightest": {"mass", "weight"},
    "weigh": {"mass", "weight"}, "weight": {"mass", "weight"}, "mass": {"mass", "weight"},
    "slimmed": {"mass", "weight"}, "size": {"mass", "weight"},
    "fuel": {"miles", "gallon", "mpg"}, "economy": {"miles", "gallon", "mpg"}, "efficient": {"miles", "gallon", "mpg"},
    "mpg": {"miles", "gallon", "mpg"},
    "rain": {"precipitation", "rain"}, "rainfall": {"precipitation", "rain"}, "rainy": {"precipitation", "rain"},
    "rainiest": {"precipitation", "rain"}, "wet": {"precipitation"}, "wettest": {"precipitation"},
    "dry": {"precipitation"}, "driest": {"precipitation"}, "precipitation": {"precipitation"},
    "hot": {"temp", "max"}, "hottest": {"temp", "max"}, "warm": {"temp", "max"}, "warmest": {"temp", "max"},
    "cold": {"temp", "min"}, "coldest": {"temp", "min"}, "temperature": {"temp"}, "temperatures": {"temp"},
    "maximum": {"max"}, "minimum": {"min"},
    "windy": {"wind"}, "windiest": {"wind"},
    "long": {"length"}, "longer": {"length"}, "longest": {"length"}, "short": {"length"}, "shortest": {"length"},
    "deep": {"depth"}, "deepest": {"depth"},
    "power": {"horsepower"}, "powerful": {"horsepower"}, "hp": {"horsepower"},
    "stock": {"price", "symbol"}, "stocks": {"price", "symbol"}, "priced": {"price"}, "expensive": {"price"}, "cheapest": {"price"},
    "company": {"symbol", "company", "ticker"}, "companies": {"symbol", "company", "ticker"},
    "ticker": {"symbol", "ticker"}, "country": {"origin", "country"}, "countries": {"origin", "country"},
    "region": {"origin", "region"}, "cars": {"name"}, "car": {"name"}, "day": {"date"}, "days": {"date"},
    "cylinder": {"cylinders"},
    "old": {"age"}, "older": {"age"}, "oldest": {"age"}, "young": {"age"}, "younger": {"age"}, "youngest": {"age"},
    "strong": {"wind", "speed"}, "strongest": {"wind", "speed"}, "fast": {"speed"}, "fastest": {"speed"},
    "slow": {"speed"}, "slowest": {"speed"}, "quick": {"acceleration"}, "quickest": {"acceleration"},
    "earn": {"revenue", "income", "salary"}, "earns": {"revenue", "income", "salary"},
    "paid": {"salary", "pay"}, "sold": {"units", "quantity", "sales"},
}
#: Tokens of column names that say nothing about the measure (units, filler).
_UNITS = {"mm", "cm", "m", "km", "g", "kg", "mg", "lb", "lbs", "s", "ms", "usd", "eur", "pct", "in", "per", "of",
          "the", "no", "num"}
#: Common company names -> ticker values (matched only when the data holds that ticker).
_TICKERS = {"microsoft": "MSFT", "apple": "AAPL", "amazon": "AMZN", "google": "GOOG", "alphabet": "GOOG",
            "ibm": "IBM", "meta": "META", "facebook": "META", "netflix": "NFLX", "tesla": "TSLA", "nvidia": "NVDA"}
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]

_HIGH = {"highest", "most", "largest", "biggest", "greatest", "maximum", "max", "top", "heaviest", "longest",
         "wettest", "hottest", "warmest", "windiest", "best", "peak", "rainiest", "deepest", "heavier", "longer",
         "efficient", "powerful", "expensive", "grew", "steepest", "weakest", "fallen", "slimmed", "strongest",
         "oldest", "older", "fastest", "priciest"}
_LOW = {"lowest", "least", "smallest", "fewest", "minimum", "min", "lightest", "shortest", "driest", "coldest",
        "worst", "cheapest", "lighter", "shorter"}

_FORECAST = re.compile(r"\b(forecast\w*|predict\w*|projection|project(ed)? (?:to|for)|extrapolat\w*|next "
                       r"(year|quarter|month|week|season|decade)|will (?:be|reach|grow|fall|rise|drop|happen)|in the "
                       r"future|future|estimat\w*|tomorrow|going to (?:be|rain|rise|fall)|expected to|outlook|"
                       r"anticipat\w*)\b", re.IGNORECASE)
_CAUSE = re.compile(r"(\bwhy\b|\bwhat (caused|causes|made|makes|drove|drives)\b|\bcaused?\b|\breasons?\b|"
                    r"\bbecause\b|\bexplain\w*\b|\bhow come\b|\bdue to\b|\bimpact of\b|\beffect of\b|"
                    r"\binfluence\w*\b)", re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|isn't|aren't|doesn't|don't|didn't|wasn't|weren't|never|except|excluding|other "
                       r"than|apart from|besides)\b", re.IGNORECASE)
_UNSUPPORTED_AGG = re.compile(r"\b(percentile|quantile|quartile|mode|skew\w*|kurtosis|regression|cluster\w*|"
                              r"outliers?|anomal\w*|distribution|histogram)\b", re.IGNORECASE)
_CORRELATION = re.compile(r"\b(correlat\w*|pearson|relationship between|related to|relate to|move together|"
                          r"associated with|association between)\b", re.IGNORECASE)
_SHARE = re.compile(r"\b((share|proportion|fraction) of|percentage of|percent of|what percent(?:age)? (?:of|are|is|were|"
                    r"was))\b", re.IGNORECASE)
_EXPLICIT_AGG = re.compile(r"\b(average|averages|mean|avg|total|sum|summed|median)\b", re.IGNORECASE)
_TWO_YEARS = re.compile(r"\b((?:19|20)\d\d)\b[^.?!]{0,40}?\b(?:vs\.?|versus|to|and|against|compared (?:to|with))\s+"
                        r"(?:the year\s+)?((?:19|20)\d\d)\b", re.IGNORECASE)
_RECOMMEND = re.compile(r"\b(recommend\w*|should we|suggest\w*|advise|flag)\b", re.IGNORECASE)
_TOP = re.compile(r"\b(?:top|first)\s+(\d+|two|three|four|five|six|seven|eight|nine|ten)\b|\b(\d+|two|three|four|"
                  r"five|six|seven|eight|nine|ten)\s+(?:\w+\s+){0,3}?(?:most|highest|largest|heaviest|best|biggest|"
                  r"lowest|least|longest|smallest|rainiest|hottest|cheapest)\b|\brank\w*\b", re.IGNORECASE)
_TREND = re.compile(r"\b(grew|grow|growth|trend\w*|changed? over|change from|over the (?:model |study )?years|"
                    r"over time|from (?:the |its |their )?first|first to (?:the |its |their )?last|between the first and (?:the )?last|"
                    r"change between|per (?:model |study )?year|each year|"
                    r"year over year|get (?:heavier|lighter|bigger|smaller|longer|shorter)|move from|evolv\w*|"
                    r"first (?:model |study )?year|first and (?:in )?(?:the )?last|slimmed down|steepest (?:decline|drop|fall))\b",
                    re.IGNORECASE)
_DECLINE = re.compile(r"\b(declin\w*|slimmed|fell|fall(?:en)?|drop\w*|lost|shr[ai]nk\w*|decreas\w*)\b", re.IGNORECASE)
_GROUP = re.compile(r"\b(compare\w*|comparison|differ\w*|break ?down|for each|per|by|across|between)\b",
                    re.IGNORECASE)
_EXTREME_WORDS = _HIGH | _LOW | {"peak"}
_GAP = re.compile(r"\b(gap|difference)\b", re.IGNORECASE)
_FALL_FROM_PEAK = re.compile(r"\b(from (?:its )?(?:highest|peak|maximum|top)\b.*\bto (?:its )?(?:last|latest|"
                             r"final|end)|fallen|drawdown)\b", re.IGNORECASE)
_NON_NULL = re.compile(r"\b(whose \w+ (?:was|is|were|are) (?:recorded|known)|with a (?:recorded|known)|recorded)\b",
                       re.IGNORECASE)


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters, digits, apostrophes dropped)."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("'s", ""))


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def col_tokens(name: str) -> set[str]:
    """The tokens of a column name: split on non-alphanumerics and camelCase, lower case, units dropped."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return {_stem(t) for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t and t not in _UNITS}


# ------------------------------------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class Filter:
    """``column = value`` (text, number), ``year(column) = value`` (``year`` true) or ``month(column) = value``
    (``month`` true, 1-12)."""

    column: str
    value: str | float
    year: bool = False
    month: bool = False


@dataclass(frozen=True)
class Question:
    """A goal read against the schema.

    ``kind``: group_comparison (an aggregate per group), trend (first vs last period: per period, per group, or
    first/last row by date), extremes (the best/worst group, period or row), top_n, share (a category's share of the
    rows), correlation (Pearson r of two columns, or of one column between two groups matched by date),
    filter_aggregate (an aggregate over filtered rows), recommend (one action resting on a computed figure).
    ``metric`` (recommend/trend per group): ``change`` (first -> last), ``fall_from_peak``, ``gap`` (between two
    values of ``split``), or ``aggregate``.
    """

    kind: Kind
    measures: list[str] = field(default_factory=list)
    agg: Agg = "avg"
    group: str | None = None
    period: Literal["year", "month", "date"] | None = None
    time_column: str | None = None
    time_is_year_number: bool = False
    label: str | None = None
    filters: list[Filter] = field(default_factory=list)
    direction: Literal["max", "min"] | None = None
    n: int = 1
    target: Filter | None = None  # share: the category counted
    non_null: bool = False  # share: denominator = rows where the target column is known
    pair: tuple[str, str] | None = None  # correlation between two groups of ``group`` matched on time_column
    metric: Literal["change", "fall_from_peak", "gap", "aggregate"] = "aggregate"
    split: tuple[str, str, str] | None = None  # gap: (column, value a, value b)
    years: tuple[int, int] | None = None  # trend between two named years ("1970 vs 1982")

    @property
    def measure(self) -> str | None:
        return self.measures[0] if self.measures else None


# ------------------------------------------------------------------------------------------------ matching
@dataclass
class _Schema:
    profile: DatasetProfile
    numeric: list[ColumnProfile]
    categorical: list[ColumnProfile]
    temporal: list[ColumnProfile]
    labels: list[ColumnProfile]
    year_number: ColumnProfile | None

    @classmethod
    def of(cls, profile: DatasetProfile) -> _Schema:
        rows = profile.rows or 0
        numeric = [c for c in profile.columns if c.numeric and not c.temporal]
        text = [c for c in profile.columns if not c.numeric and not c.temporal]
        categorical = [c for c in text if c.distinct is not None and 2 <= c.distinct <= 50]
        labels = sorted([c for c in text if c.distinct is not None and c.distinct > 50 or (rows and c.distinct
                                                                                         and c.distinct > rows / 2)],
                        key=lambda c: -(c.distinct or 0))
        year_number = next((c for c in numeric if col_tokens(c.name) & {"year", "yr"}
                            and isinstance(c.min, int | float) and 1800 <= c.min <= 2200), None)
        temporal = [c for c in profile.columns if c.temporal]
        return cls(profile, [c for c in numeric if c is not year_number], categorical, temporal, labels, year_number)


def _expand(goal_words: list[str]) -> list[tuple[str, set[str]]]:
    """Each content word of the goal with the column tokens it may point at (itself, its stem, the thesaurus)."""
    out = []
    for w in goal_words:
        if w in _STOP or w.isdigit():
            continue
        out.append((w, {w, _stem(w)} | _THESAURUS.get(w, set()) | _THESAURUS.get(_stem(w), set())))
    return out


def _token_hit(token: str, targets: set[str]) -> bool:
    return token in targets or any(len(t) >= 4 and len(token) >= 4 and (t.startswith(token) or token.startswith(t))
                                   for t in targets)


def _score(column: ColumnProfile, expanded: list[tuple[str, set[str]]]) -> int:
    tokens = col_tokens(column.name)
    return sum(1 for token in tokens for _, targets in expanded if _token_hit(token, targets))


def _values(schema: _Schema, goal: str) -> list[tuple[ColumnProfile, str]]:
    """Category values the goal names (whole words, case-insensitive; tickers also by company name), in goal order."""
    lower = goal.lower()
    hits: list[tuple[int, ColumnProfile, str]] = []
    for c in schema.categorical:
        for top in c.top:
            value = str(top.get("value", ""))
            if not value:
                continue
            m = re.search(r"(?<![a-z0-9])" + re.escape(value.lower()) + r"(?:e?s|ese|ian|an|ish|n?y|ern)?(?![a-z0-9])",
                          lower)
            pos = m.start() if m else -1
            if pos < 0:
                names = [n for n, t in _TICKERS.items() if t == value]
                found = [lower.find(n) for n in names if re.search(rf"\b{n}\b", lower)]
                pos = min(found) if found else -1
            if pos >= 0:
                hits.append((pos, c, value))
    hits.sort(key=lambda h: h[0])
    seen, out = set(), []
    for _, c, v in hits:
        if (c.name, v) not in seen:
            seen.add((c.name, v))
            out.append((c, v))
    return out


def _measures(schema: _Schema, expanded: list[tuple[str, set[str]]]) -> list[str]:
    """Numeric columns the goal names, best first; each goal word counts only for the column it matches best (so
    'maximum temperature' is temp_max, not temp_min too)."""
    scores = {c.name: _score(c, expanded) for c in schema.numeric}
    order = sorted((c for c in schema.numeric if scores[c.name] > 0), key=lambda c: -scores[c.name])
    used: set[str] = set()
    out = []
    for c in order:
        own = {w for w, targets in expanded if any(_token_hit(t, targets) for t in col_tokens(c.name))}
        if own - used:
            out.append(c.name)
        used |= own
    return out


def _aggregate(goal: str) -> Agg:
    low = goal.lower()
    if re.search(r"\b(standard deviation|std ?dev|stdev|std)\b", low):
        return "stddev"
    if re.search(r"\bvariance\b", low):
        return "variance"
    if re.search(r"\bmedian\b", low):
        return "median"
    if re.search(r"\b(average|mean|avg)\b", low):  # "on average, how many trips..." is a mean of trips
        return "avg"
    if re.search(r"\b(how many|count|number of)\b", low):
        return "count"
    if re.search(r"\b(total|sum|summed|altogether|cumulative|how much)\b", low):
        return "sum"
    return "avg"


def _direction(goal_words: list[str]) -> Literal["max", "min"] | None:
    """max/min from the goal's first superlative (column names are removed before: "temp_max" is no superlative)."""
    for w in goal_words:
        if w in _LOW:
            return "min"
        if w in _HIGH:
            return "max"
    return None


def _n(goal: str) -> int:
    m = _TOP.search(goal)
    if not m:
        return 3
    raw = (m.group(1) or m.group(2) or "").lower()
    if not raw:
        return 3
    return int(raw) if raw.isdigit() else _NUMBER_WORDS.get(raw, 3)


_AGG_PHRASE = re.compile(r"\b(?:average|mean|total|median|sum of|highest average|lowest average)\s+((?:[a-z-]+\s+)"
                         r"{0,2}[a-z-]+)", re.IGNORECASE)
_FILLER = {"daily", "monthly", "yearly", "annual", "overall", "stock", "sale", "trading", "of", "the", "per", "for",
           "each", "all", "a", "an", "in", "on", "over", "across", "by", "from", "and", "car", "cars", "penguin",
           "penguins", "day", "days", "value", "values", "level", "levels", "amount"}


def _unknown_measure(goal: str, schema: _Schema) -> str | None:
    """A measure named after an aggregate word ("average price") that no column matches, or None."""
    columns = schema.profile.columns
    for m in _AGG_PHRASE.finditer(goal):
        phrase = []
        for w in words(m.group(1)):
            if w in _STOP:
                break
            phrase.append(w)
        content = phrase
        if not content:
            continue
        exp = _expand(content)
        if any(_score(c, exp) for c in columns):
            continue
        if any(v.lower() in phrase for c in schema.categorical for v in (str(t.get("value", "")) for t in c.top)):
            continue
        nouns = [w for w in content if w not in _FILLER]
        if nouns:
            return " ".join(phrase)
    m = re.search(r"\b(total|average|mean)\s+(trading\s+volume|volume|revenue|sales|profit|income|cost|price)\b",
                  goal, re.IGNORECASE)
    if m:
        exp = _expand(words(m.group(2)))
        if not any(_score(c, exp) for c in columns):
            return m.group(2).lower()
    return None


# ------------------------------------------------------------------------------------------------ interpret
def decline(code: str, reason: str) -> Decline:
    return Decline(code=code, reason=f"{reason} {NEEDS_PROVIDER}")


def interpret(goal: str, profile: DatasetProfile | None) -> Question | Decline:
    """The goal as a :class:`Question` over ``profile``'s columns, or a :class:`Decline` saying what the rule
    engine cannot do (see the module docstring)."""
    if _FORECAST.search(goal):
        return decline("forecast", "The rule engine does not forecast or predict: it only computes figures from the "
                                   "data that is there.")
    if _CAUSE.search(goal):
        return decline("cause", "The rule engine cannot explain causes ('why'): the data shows what happened, not "
                                "why it happened.")
    if profile is None or not profile.columns:
        return decline("no_dataset", "The rule engine answers questions about a dataset, and this run has none (or "
                                     "its profile is missing).")
    schema = _Schema.of(profile)
    if _NEGATION.search(goal):
        return decline("unsupported", "The rule engine does not answer negated or excluding questions ('not', "
                                      "'except'): it would risk answering the opposite question.")
    if m := _UNSUPPORTED_AGG.search(goal):
        return decline("unsupported", f"The rule engine has no rule for '{m.group(0)}': it computes means, totals, "
                                      "medians, counts, standard deviations, extremes, rankings, shares, changes "
                                      "and correlations.")
    gw = words(goal)
    plain = goal
    for c in profile.columns:  # exact column names do not count as words of direction ("temp_max")
        if "_" in c.name or any(ch.isupper() for ch in c.name[1:]):
            plain = re.sub(r"(?<![A-Za-z0-9_])" + re.escape(c.name) + r"(?![A-Za-z0-9_])", " ", plain,
                           flags=re.IGNORECASE)
    expanded = _expand(gw)
    unknown = _unknown_measure(goal, schema)
    if unknown:
        names = ", ".join(c.name for c in profile.columns)
        return decline("unknown_column", f"The goal asks about '{unknown}', which no column of {profile.dataset} "
                                         f"holds (columns: {names}).")
    values = _values(schema, goal)
    value_cols = {c.name for c, _ in values}
    value_words = {w for _, v in values for w in words(v)} | {w + "s" for _, v in values for w in words(v)}
    measures = _measures(schema, [(w, t) for w, t in expanded if w not in value_words])
    if not measures and not _SHARE.search(goal) and _aggregate(goal) != "count":
        # "how much did it rain": a value word ("rain") that also names a measure (precipitation)
        measures = _measures(schema, expanded)
        if measures:
            values = [(c, v) for c, v in values if not any(w in _THESAURUS for w in words(v))]
            value_cols = {c.name for c, _ in values}
    agg = _aggregate(goal)
    measure_tokens = {t for m in measures[:1] for t in col_tokens(m)}
    direction = _direction([w for w in words(plain)  # "maximum temperature" names temp_max: no superlative
                            if not (w in ("max", "maximum", "min", "minimum") and
                                    ({w} | _THESAURUS.get(w, set())) & measure_tokens)])
    unknown_value = _unknown_value(goal, schema, values)
    if unknown_value:
        known = "; ".join(f"{c.name}: {', '.join(str(t.get('value')) for t in c.top[:8])}" for c in schema.categorical)
        return decline("unknown_value", f"The goal names '{unknown_value}', which is not a value of any category "
                                        f"column of {profile.dataset} ({known}).")
    time_col, period, year_number = _time(schema, goal, gw)
    # group column: named by its tokens, or the column of >= 2 named values
    multi = [name for name in value_cols if sum(1 for c, _ in values if c.name == name) >= 2]
    named_groups = [c for c in schema.categorical if _score(c, expanded) > 0 and c.name not in value_cols]
    numeric_group = _numeric_group(goal, schema)
    group = multi[0] if multi else (named_groups[0].name if named_groups else numeric_group)
    if numeric_group and group == numeric_group:
        measures = [m for m in measures if m != numeric_group]
    if multi and named_groups and _GAP.search(goal):  # "the species with the largest gap between males and females"
        group = named_groups[0].name
    filters = [Filter(c.name, v) for c, v in values if c.name != group]
    filters += _numeric_filters(schema, goal)
    two_years = _TWO_YEARS.search(goal)
    months_named = [m for m in _MONTHS if re.search(rf"\b{m}\b", goal, re.IGNORECASE)]
    if len(months_named) >= 2 and not re.search(r"\b(month|months)\b", goal, re.IGNORECASE):
        return decline("unsupported", "The rule engine does not compare two named months (" + " and ".join(
            months_named) + "): it compares groups, periods of one kind, or the first and last period.")
    year = None if two_years else _year_filter(goal, schema)
    if year is not None:
        span = _year_span(schema)
        if span and not (span[0] <= int(year.value) <= span[1]):
            if int(year.value) > span[1]:
                return decline("forecast", f"The goal asks about {int(year.value)}, after the data ends ({span[1]}): "
                                           "the rule engine does not forecast.")
            return decline("no_rule", f"The goal asks about {int(year.value)}, before the data starts ({span[0]}).")
        filters.append(year)
    month = _month_filter(goal, schema)
    if month is not None:
        filters.append(month)
    base = dict(measures=measures, agg=agg, filters=filters, time_column=time_col, time_is_year_number=year_number)

    if _CORRELATION.search(goal):
        return _correlation(schema, measures, values, base, time_col)
    if _SHARE.search(goal):
        target = _share_target(goal, values) or _flag_target(goal, schema)
        if target is None:
            return decline("no_rule", "The goal asks for a share but names no category value the data holds.")
        scope = [Filter(c.name, v) for c, v in values if (c.name, v) != (target[0].name, target[1])]
        scope += [f for f in filters if f not in scope and not any(f.column == c.name for c, _ in values)]
        return Question(kind="share", target=Filter(target[0].name, target[1]),
                        non_null=bool(_NON_NULL.search(goal)), filters=scope)
    recommend = bool(_RECOMMEND.search(goal))
    split = [c.name for c, _ in values if c.name != group]
    filters = [f for f in filters if not (len(split) >= 2 and split[0] == split[1] and f.column == split[0])]
    if recommend or (_GAP.search(goal) and len(split) >= 2 and split[0] == split[1]) or _FALL_FROM_PEAK.search(goal):
        q = _recommend(goal, schema, base, group, values, direction, time_col, period)
        if q is not None:
            return q
    if _TOP.search(goal) and (measures or agg == "count"):
        if not measures:
            return decline("no_rule", "The goal asks for a ranking but names no numeric column to rank by.")
        label = group or (schema.labels[0].name if schema.labels and not _wants_days(gw) else None)
        if label is None and time_col:
            label = time_col
        if label is None:
            return decline("no_rule", "The goal asks for a ranking but the data has no column that names the rows.")
        return Question(kind="top_n", **base, group=group, label=label, n=_n(goal),
                        direction="min" if direction == "min" else "max")
    if two_years and (time_col or schema.year_number) and (measures or agg == "count"):
        a, b = sorted(int(y) for y in two_years.groups())
        span = _year_span(schema)
        if span and not (span[0] <= a and b <= span[1]):
            return decline("no_rule", f"The goal compares {a} and {b}, but the data covers {span[0]}-{span[1]}.")
        return Question(kind="trend", **base, period="year", years=(a, b))
    by_period = re.search(r"\b(which|what)\s+(?:\w+\s+)?(year|month)\b", goal, re.IGNORECASE)
    if by_period and direction and measures and time_col and not _TREND.search(goal.replace("per year", "")) \
            and (_EXPLICIT_AGG.search(goal) or not filters):
        return Question(kind="extremes", **base, period="month" if by_period.group(2).lower() == "month" else "year",
                        direction=direction)
    if _TREND.search(goal) and (measures or agg == "count") and (time_col or schema.year_number):
        if group and direction and re.search(r"\b(which|who)\b", goal, re.IGNORECASE):
            return Question(kind="trend", **{**base, "filters": filters}, group=group, metric="change",
                            period=period or "date", direction="min" if _DECLINE.search(goal) else "max")
        if group and not filters:
            return Question(kind="trend", **base, group=group, metric="change", period=period or "date",
                            direction=direction or "max")
        return Question(kind="trend", **base, period=period or ("year" if not _first_last_date(goal) else "date"))
    if re.search(r"\bgrew|\bgrowth\b", goal, re.IGNORECASE) and group and measures and time_col:
        return Question(kind="trend", **base, group=group, metric="change", period="date", direction="max")
    extreme = direction is not None and (re.search(r"\b(which|what|when|who)\b", goal, re.IGNORECASE)
                                         or any(w in gw for w in ("peak", "highest", "lowest")))
    if extreme and (measures or agg == "count"):
        if group:
            return Question(kind="extremes", **base, group=group, direction=direction)
        periodic = period in ("month", "year") or re.search(r"\b(month|year)\b", goal, re.IGNORECASE) and time_col
        if periodic and (_EXPLICIT_AGG.search(goal) or not filters):
            return Question(kind="extremes", **base, period=period or "year", direction=direction)
        label = time_col if (_wants_days(gw) or re.search(r"\bwhen\b", goal, re.IGNORECASE)) else None
        label = label or (schema.labels[0].name if schema.labels else time_col)
        if label:
            return Question(kind="extremes", **{**base, "agg": "max" if direction == "max" else "min"}, label=label,
                            direction=direction)
    if filters and (measures or agg == "count") and not group:
        return Question(kind="filter_aggregate", **base)
    if group and (measures or agg == "count"):
        return Question(kind="group_comparison", **base, group=group, direction=direction if extreme else None)
    if _GROUP.search(goal) and measures and schema.categorical:
        guess = next((c.name for c in schema.categorical if _score(c, expanded) > 0), None)
        if guess:
            return Question(kind="group_comparison", **base, group=guess)
    if measures and re.search(r"\b(average|mean|total|median|sum)\b", goal, re.IGNORECASE):
        return Question(kind="filter_aggregate", **base)
    if re.search(r"\b(describe|summari[sz]e|profile|overview)\b", goal, re.IGNORECASE):
        return Question(kind="profile")
    return decline("no_rule", "No rule of the rule engine fits this goal: it answers group comparisons, trends, "
                              "extremes, top-N rankings, shares, correlations, filtered aggregates and "
                              "recommendations resting on one of those figures.")


_SHARE_VERB = re.compile(r"\b(are|is|were|was|be|come|comes|came|live|lives|lived|recorded as|labell?ed|have|has)\s+"
                         r"(?:\w+\s+){0,2}$", re.IGNORECASE)


def _share_target(goal: str, values: list[tuple[ColumnProfile, str]]) -> tuple[ColumnProfile, str] | None:
    """The category whose share is asked: the value a verb points at ("... are Adelie", "... live on Dream"), else
    the last value named; the other values are the scope (the denominator's rows)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    lower = goal.lower()
    for c, v in values:
        at = lower.find(v.lower())
        if at > 0 and _SHARE_VERB.search(lower[:at]):
            return c, v
    return values[-1]


#: Analysts' words that are never category values (a goal may shout them: "the AVERAGE mass").
_VOCABULARY = set("""average mean total median sum count percentage percent share proportion fraction rank ranking
ranked top trend trends correlation correlate pearson compare comparison change changes changed growth grew highest
lowest maximum minimum largest smallest most least best worst first last each every group groups per year years month
months day days date dates value values figure figures report data dataset table column columns row rows please show
list give tell find compute calculate what which when who how is are was were does do did between across by""".split())


_YES = ("yes", "true", "y", "1")


def _flag_target(goal: str, schema: _Schema) -> tuple[ColumnProfile, str] | None:
    """A yes/no column the goal names ("what percentage of orders were returned") -> its yes value."""
    exp = _expand(words(goal))
    for c in schema.categorical:
        values = [str(t.get("value", "")) for t in c.top]
        yes = next((v for v in values if v.lower() in _YES), None)
        if yes is not None and len(values) == 2 and _score(c, exp) > 0:
            return c, yes
    return None


def _unknown_value(goal: str, schema: _Schema, values: list[tuple[ColumnProfile, str]]) -> str | None:
    """A capitalised word in a value position ("cars from Germany", "Emperor penguins", "for Acme") that is no
    value, column, month or word the rules know: the goal asks about a category the data does not hold."""
    known = {w for _, v in values for w in words(v)} | {n for n in _TICKERS}
    known |= {t for c in schema.profile.columns for t in col_tokens(c.name)} | {m.lower() for m in _MONTHS}
    known |= set(words(schema.profile.dataset)) | set(_THESAURUS) | _STOP | _HIGH | _LOW
    known |= {w for c in schema.categorical for t in c.top for w in words(str(t.get("value", "")))}
    known |= _VOCABULARY
    sentences = re.split(r"(?<=[.?!:;])\s+", goal.strip())
    for sentence in sentences:
        tokens = re.findall(r"[A-Za-z][A-Za-z'-]*", sentence)
        for i, tok in enumerate(tokens):
            if i == 0 or not tok[0].isupper() or tok.lower().replace("'s", "") in known:
                continue
            if tok.isupper() and len(tok) <= 5 and tok.lower() in ("i", "usd", "eur", "id", "pdf", "csv", "sql"):
                continue
            nxt = tokens[i + 1].lower() if i + 1 < len(tokens) else ""
            prev = tokens[i - 1].lower()
            if nxt in ("dataset", "data", "archipelago", "station") or prev in ("the",) and nxt in ("dataset",):
                continue
            if prev in ("from", "of", "for", "in", "on", "at", "among", "by") or nxt in (
                    "penguins", "penguin", "cars", "car", "stock", "stocks", "island", "region", "customers",
                    "orders", "shares", "price", "prices") or (tok.isupper() and len(tok) <= 5):
                return tok
    return None


def _numeric_group(goal: str, schema: _Schema) -> str | None:
    """A low-cardinality whole-number column named as the grouping ("across cylinder counts", "by number of
    cylinders", "for each cylinder count")."""
    m = re.search(r"\b(?:by|across|per|for each|for every|each)\s+(?:the\s+)?(?:number of\s+)?([a-z]+)",
                  goal.lower())
    if not m:
        return None
    word = m.group(1)
    for c in schema.numeric:
        if (c.distinct or 99) <= 20 and _base_int(c) and any(_token_hit(t, {word, _stem(word)})
                                                              for t in col_tokens(c.name)):
            return c.name
    return None


def _base_int(c: ColumnProfile) -> bool:
    return "INT" in c.type.upper()


def _year_span(schema: _Schema) -> tuple[int, int] | None:
    if schema.temporal:
        lo, hi = str(schema.temporal[0].min or ""), str(schema.temporal[0].max or "")
        if lo[:4].isdigit() and hi[:4].isdigit():
            return int(lo[:4]), int(hi[:4])
    if schema.year_number is not None and isinstance(schema.year_number.max, int | float):
        return int(schema.year_number.min), int(schema.year_number.max)
    return None


def _month_filter(goal: str, schema: _Schema) -> Filter | None:
    """``in July`` / ``during March`` / ``for December`` -> month(date) = n (not with a "month" grouping)."""
    if not schema.temporal or re.search(r"\b(which|what) month\b|\bper month\b|\bmonth of the year\b", goal,
                                        re.IGNORECASE):
        return None
    for i, name in enumerate(_MONTHS, 1):
        if re.search(rf"\b(?:in|during|for|of|across)\s+{name}\b", goal, re.IGNORECASE):
            return Filter(schema.temporal[0].name, i, month=True)
    return None


def _wants_days(gw: list[str]) -> bool:
    return bool({"day", "days", "date", "dates"} & set(gw))


def _first_last_date(goal: str) -> bool:
    """First vs last *row* (by date): "first to the last date", "between the first and the last month" of monthly
    rows, "starting/ending price"."""
    return bool(re.search(r"\b(first|start\w*) (?:to (?:the |its )?|and (?:the |its )?)?(?:last|end\w*) "
                          r"(?:date|day|month|record|price|value|observation)|first date|last date|starting price|"
                          r"ending price\b", goal, re.IGNORECASE))


def _time(schema: _Schema, goal: str, gw: list[str]) -> tuple[str | None, Literal["year", "month", "date"] | None,
                                                              bool]:
    """The time column and the period the goal speaks of (year, month of year, date)."""
    period: Literal["year", "month", "date"] | None = None
    if _first_last_date(goal):
        period = "date"
    elif re.search(r"\bmonths?\b", goal, re.IGNORECASE):
        period = "month"
    elif re.search(r"\byears?\b|\bannual", goal, re.IGNORECASE):
        period = "year"
    elif _wants_days(gw) or _first_last_date(goal):
        period = "date"
    if schema.temporal:
        return schema.temporal[0].name, period, False
    if schema.year_number is not None:
        return schema.year_number.name, "year" if period in (None, "year") else period, True
    return None, period, False


def _numeric_filters(schema: _Schema, goal: str) -> list[Filter]:
    """``4-cylinder`` -> Cylinders = 4 (a number glued to a word that names an integer column)."""
    out = []
    for m in re.finditer(r"\b(\d+)[- ]([a-z]+)", goal.lower()):
        number, word = int(m.group(1)), _stem(m.group(2))
        for c in schema.numeric:
            if any(_token_hit(t, {word, m.group(2)}) for t in col_tokens(c.name)) and (c.distinct or 0) <= 50:
                out.append(Filter(c.name, number))
                break
    return out


def _year_filter(goal: str, schema: _Schema) -> Filter | None:
    m = re.search(r"\b(?:in|during|for|of)\s+((?:19|20)\d\d)\b", goal)
    if not m:
        return None
    if schema.temporal:
        return Filter(schema.temporal[0].name, int(m.group(1)), year=True)
    if schema.year_number is not None:
        return Filter(schema.year_number.name, int(m.group(1)))
    return None


def _correlation(schema: _Schema, measures: list[str], values: list[tuple[ColumnProfile, str]], base: dict,
                 time_col: str | None) -> Question | Decline:
    if len(measures) >= 2:
        return Question(kind="correlation", **{**base, "measures": measures[:2]})
    if (measures or schema.numeric) and len(values) >= 2 and values[0][0].name == values[1][0].name and time_col:
        # one column between two groups matched by time ("MSFT and IBM prices"): the named measure, else the only one
        measure = measures[0] if measures else schema.numeric[0].name
        return Question(kind="correlation", **{**base, "measures": [measure], "filters": []}, group=values[0][0].name,
                        pair=(values[0][1], values[1][1]))
    return decline("no_rule", "The goal asks for a correlation but does not name two numeric columns the data holds.")


def _recommend(goal: str, schema: _Schema, base: dict, group: str | None, values: list[tuple[ColumnProfile, str]],
               direction: str | None, time_col: str | None, period: str | None) -> Question | None:
    """Recommend one action resting on a computed figure: the group with the largest/smallest metric."""
    if not base["measures"]:
        return None
    if group is None:
        cands = [c for c in schema.categorical if c.name not in {f.column for f in base["filters"]}]
        named = [c for c in cands if _score(c, _expand(words(goal))) > 0]
        group = named[0].name if named else None
    split_values = [(c, v) for c, v in values if c.name != group]
    if _GAP.search(goal) and len(split_values) >= 2 and split_values[0][0].name == split_values[1][0].name and group:
        col = split_values[0][0].name
        return Question(kind="recommend", **{**base, "filters": [f for f in base["filters"] if f.column != col]},
                        group=group, metric="gap", split=(col, split_values[0][1], split_values[1][1]),
                        direction="max" if direction != "min" else "min")
    if _FALL_FROM_PEAK.search(goal) and group and time_col:
        return Question(kind="recommend", **base, group=group, metric="fall_from_peak", period="date", direction="max")
    if (re.search(r"\b(declin\w*|slimmed|drop\w*|fell|fall|grew|growth|increas\w*|change)\b", goal, re.IGNORECASE)
            or _TREND.search(goal)) and group and time_col:
        decline_wanted = bool(re.search(r"\b(declin\w*|slimmed|drop\w*|fell|fall)\b", goal, re.IGNORECASE))
        return Question(kind="recommend", **base, group=group, metric="change",
                        period="year" if re.search(r"\byears?\b", goal, re.IGNORECASE) else "date",
                        direction="min" if decline_wanted or direction == "min" else "max")
    if group and direction:
        return Question(kind="recommend", **base, group=group, metric="aggregate", direction=direction)
    if period in ("month", "year") and time_col and direction:
        return Question(kind="recommend", **base, period=period, metric="aggregate", direction=direction)
    return None


def month_name(number: int) -> str:
    return _MONTHS[number - 1] if 1 <= number <= 12 else str(number)
