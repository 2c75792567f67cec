"""Ground truth for the ``analyst`` eval suite: independent ground truth computed with pandas, not with
DuckDB/SQL that the engine under test uses.

One function per answerable case of ``suite.yaml`` (the case's ``truth`` name). Each takes the case's dataset as
a pandas DataFrame (see :func:`load`) and returns ``{"entity": str | None, "figures": {name: float}}`` at full
precision (top-N cases also return ``"entities"``: the N labels, best first). ``suite.yaml`` holds the same
figures rounded to 2 decimals; ``tests/unit/evals/test_suite_truth.py`` recomputes them from here.

Conventions (the same ones the goals state):

- the period of a date is its calendar year; "month" means month of year across all years combined (January..
  December), written as its English name;
- averages, medians and correlations skip missing values (``NA``), like SQL ``AVG``/``MEDIAN``/``CORR``;
- a change in % is ``(last - first) / first * 100``; a decline in % is ``(first - last) / first * 100``;
- a share in % is ``part / whole * 100`` over rows;
- a date entity is written ``YYYY-MM-DD``, a year entity as its four digits.

Run ``python truth.py`` to print every function's result as JSON (what ``suite.yaml`` was generated from).
pandas is imported lazily, inside :func:`load`: importing this module does not need it.
"""

from __future__ import annotations

import calendar
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: Strings read as missing, the same list the engine's data tools use for CSV files.
NULLS = ["", "NA", "N/A", "NULL"]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def data_dir() -> Path:
    """The ``stepcrew.data`` package folder (where the suite's dataset files are)."""
    import stepcrew.data

    return Path(stepcrew.data.__file__).resolve().parent


@functools.lru_cache(maxsize=8)
def _read(dataset_file: str) -> pd.DataFrame:
    import pandas as pd

    df = pd.read_csv(data_dir() / dataset_file, keep_default_na=False, na_values=NULLS, encoding="utf-8")
    for col in df.columns:
        if df[col].dtype.kind in "iufb":
            continue
        values = df[col].dropna().astype(str)
        if len(values) and values.map(lambda v: bool(_ISO_DATE.match(v))).all():
            df[col] = pd.to_datetime(df[col], format="%Y-%m-%d")
    return df


def load(dataset_file: str) -> pd.DataFrame:
    """The dataset file (a name in the ``stepcrew.data`` folder) as a DataFrame: ``NA``/empty read as missing,
    ISO date columns (``YYYY-MM-DD``) parsed as datetimes. A fresh copy on each call."""
    return _read(dataset_file).copy()


# ============================================================================================== helpers
def _result(entity: Any = None, entities: list[str] | None = None, **figures: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"entity": None if entity is None else str(entity),
                           "figures": {name: float(value) for name, value in figures.items()}}
    if entities is not None:
        out["entities"] = [str(e) for e in entities]
    return out


def _change_pct(first: float, last: float) -> float:
    return (last - first) / first * 100


def _month_name(month: int) -> str:
    return calendar.month_name[int(month)]


def _day(ts: Any) -> str:
    return ts.strftime("%Y-%m-%d")


def _argmax(series: pd.Series) -> Any:
    """The index label of the largest value; raises on a tie (the suite's answers must be unambiguous)."""
    best = series.max()
    winners = series.index[series == best]
    if len(winners) != 1:
        raise ValueError(f"tie for the largest value {best}: {list(winners)}")
    return winners[0]


def _argmin(series: pd.Series) -> Any:
    return _argmax(-series)


def _first_last_by_year(data: pd.DataFrame, period: pd.Series, measure: str) -> tuple[float, float]:
    means = data.groupby(period)[measure].mean().sort_index()
    return means.iloc[0], means.iloc[-1]


def _symbol(data: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return data[data["symbol"] == symbol].sort_values("date")


def _top(data: pd.DataFrame, label: str, measure: str, n: int, tie_break: str | None = None) -> dict[str, Any]:
    """The ``n`` rows with the largest ``measure`` (ties broken by ``tie_break`` ascending); raises when the row
    after the N-th ties with it (the set would be ambiguous)."""
    rows = data.dropna(subset=[measure])
    order = [measure] + ([tie_break] if tie_break else [])
    rows = rows.sort_values(order, ascending=[False] + [True] * (len(order) - 1))
    if len(rows) > n and rows[measure].iloc[n] == rows[measure].iloc[n - 1]:
        raise ValueError(f"top {n} by {measure} is ambiguous: a tie at rank {n}")
    labels = rows[label].head(n).tolist()
    labels = [_day(v) if hasattr(v, "strftime") else v for v in labels]
    return {"labels": labels, "top": rows[measure].iloc[0]}


# ============================================================================================== group_comparison
def penguins_mass_by_species(data: pd.DataFrame) -> dict:
    means = data.groupby("species")["body_mass_g"].mean()
    return _result(_argmax(means), mean_body_mass_g_adelie=means["Adelie"],
                   mean_body_mass_g_chinstrap=means["Chinstrap"], mean_body_mass_g_gentoo=means["Gentoo"])


def cars_mpg_by_origin(data: pd.DataFrame) -> dict:
    means = data.groupby("Origin")["Miles_per_Gallon"].mean()
    return _result(_argmax(means), mean_mpg_usa=means["USA"], mean_mpg_europe=means["Europe"],
                   mean_mpg_japan=means["Japan"])


def weather_wind_by_weather_type(data: pd.DataFrame) -> dict:
    means = data.groupby("weather")["wind"].mean()
    return _result(_argmax(means), **{f"mean_wind_{kind}": means[kind]
                                       for kind in ("drizzle", "fog", "rain", "snow", "sun")})


def penguins_flipper_by_island(data: pd.DataFrame) -> dict:
    means = data.groupby("island")["flipper_length_mm"].mean()
    return _result(None, mean_flipper_mm_biscoe=means["Biscoe"], mean_flipper_mm_dream=means["Dream"],
                   mean_flipper_mm_torgersen=means["Torgersen"])


# ============================================================================================== trend
def stocks_grew_most(data: pd.DataFrame) -> dict:
    growth = {}
    for symbol, rows in data.sort_values("date").groupby("symbol"):
        growth[symbol] = _change_pct(rows["price"].iloc[0], rows["price"].iloc[-1])
    import pandas as pd

    growth_s = pd.Series(growth)
    winner = _argmax(growth_s)
    return _result(winner, growth_pct=growth_s[winner])


def cars_mpg_over_model_years(data: pd.DataFrame) -> dict:
    first, last = _first_last_by_year(data, data["Year"].dt.year, "Miles_per_Gallon")
    return _result(None, mean_mpg_first_year=first, mean_mpg_last_year=last, change_pct=_change_pct(first, last))


def weather_max_temp_per_year(data: pd.DataFrame) -> dict:
    first, last = _first_last_by_year(data, data["date"].dt.year, "temp_max")
    return _result(None, mean_temp_max_first_year=first, mean_temp_max_last_year=last,
                   change_pct=_change_pct(first, last))


def stocks_msft_first_to_last(data: pd.DataFrame) -> dict:
    rows = _symbol(data, "MSFT")
    first, last = rows["price"].iloc[0], rows["price"].iloc[-1]
    return _result(None, first_price=first, last_price=last, change_pct=_change_pct(first, last))


def penguins_mass_per_study_year(data: pd.DataFrame) -> dict:
    first, last = _first_last_by_year(data, data["year"], "body_mass_g")
    return _result(None, mean_body_mass_g_first_year=first, mean_body_mass_g_last_year=last,
                   change_pct=_change_pct(first, last))


# ============================================================================================== extremes
def weather_wettest_month(data: pd.DataFrame) -> dict:
    totals = data.groupby(data["date"].dt.month)["precipitation"].sum()
    month = _argmax(totals)
    return _result(_month_name(month), total_precipitation=totals[month])


def cars_peak_horsepower_year(data: pd.DataFrame) -> dict:
    means = data.groupby(data["Year"].dt.year)["Horsepower"].mean()
    year = _argmax(means)
    return _result(year, mean_horsepower=means[year])


def stocks_amzn_peak_price(data: pd.DataFrame) -> dict:
    rows = _symbol(data, "AMZN").set_index("date")["price"]
    when = _argmax(rows)
    return _result(_day(when), peak_price=rows[when])


def weather_hottest_day(data: pd.DataFrame) -> dict:
    temps = data.set_index("date")["temp_max"]
    when = _argmax(temps)
    return _result(_day(when), temp_max=temps[when])


def penguins_longest_bill_species(data: pd.DataFrame) -> dict:
    means = data.groupby("species")["bill_length_mm"].mean()
    species = _argmax(means)
    return _result(species, mean_bill_length_mm=means[species])


# ============================================================================================== top_n
def cars_top5_mpg(data: pd.DataFrame) -> dict:
    top = _top(data, "Name", "Miles_per_Gallon", 5)
    return _result(top["labels"][0], top["labels"], top_mpg=top["top"])


def cars_top3_heaviest(data: pd.DataFrame) -> dict:
    top = _top(data, "Name", "Weight_in_lbs", 3)
    return _result(top["labels"][0], top["labels"], top_weight_lbs=top["top"])


def weather_top3_rainiest_days(data: pd.DataFrame) -> dict:
    top = _top(data, "date", "precipitation", 3, tie_break="date")
    return _result(top["labels"][0], top["labels"], top_precipitation=top["top"])


def stocks_top3_average_price(data: pd.DataFrame) -> dict:
    means = data.groupby("symbol", as_index=False)["price"].mean()
    top = _top(means, "symbol", "price", 3)
    return _result(top["labels"][0], top["labels"], top_average_price=top["top"])


# ============================================================================================== share
def weather_sunny_share(data: pd.DataFrame) -> dict:
    return _result(None, sun_share_pct=(data["weather"] == "sun").sum() / len(data) * 100)


def cars_usa_share(data: pd.DataFrame) -> dict:
    return _result(None, usa_share_pct=(data["Origin"] == "USA").sum() / len(data) * 100)


def penguins_biscoe_share(data: pd.DataFrame) -> dict:
    return _result(None, biscoe_share_pct=(data["island"] == "Biscoe").sum() / len(data) * 100)


def penguins_female_share(data: pd.DataFrame) -> dict:
    known = data["sex"].dropna()
    return _result(None, female_share_pct=(known == "female").sum() / len(known) * 100)


# ============================================================================================== correlation
def _pearson(data: pd.DataFrame, x: str, y: str) -> float:
    pair = data[[x, y]].dropna()
    return pair[x].corr(pair[y], method="pearson")


def penguins_flipper_mass_corr(data: pd.DataFrame) -> dict:
    return _result(None, pearson_r=_pearson(data, "flipper_length_mm", "body_mass_g"))


def cars_weight_mpg_corr(data: pd.DataFrame) -> dict:
    return _result(None, pearson_r=_pearson(data, "Weight_in_lbs", "Miles_per_Gallon"))


def weather_max_min_temp_corr(data: pd.DataFrame) -> dict:
    return _result(None, pearson_r=_pearson(data, "temp_max", "temp_min"))


def stocks_msft_ibm_corr(data: pd.DataFrame) -> dict:
    wide = data[data["symbol"].isin(["MSFT", "IBM"])].pivot(index="date", columns="symbol", values="price")
    return _result(None, pearson_r=_pearson(wide, "MSFT", "IBM"))


# ============================================================================================== filter_aggregate
def penguins_gentoo_flipper(data: pd.DataFrame) -> dict:
    return _result(None, mean_flipper_mm=data.loc[data["species"] == "Gentoo", "flipper_length_mm"].mean())


def cars_japan_median_horsepower(data: pd.DataFrame) -> dict:
    return _result(None, median_horsepower=data.loc[data["Origin"] == "Japan", "Horsepower"].median())


def weather_2015_total_precipitation(data: pd.DataFrame) -> dict:
    return _result(None, total_precipitation=data.loc[data["date"].dt.year == 2015, "precipitation"].sum())


def stocks_ibm_2008_average(data: pd.DataFrame) -> dict:
    rows = data[(data["symbol"] == "IBM") & (data["date"].dt.year == 2008)]
    return _result(None, mean_price=rows["price"].mean())


def cars_europe_4_cylinder_count(data: pd.DataFrame) -> dict:
    return _result(None, car_count=((data["Origin"] == "Europe") & (data["Cylinders"] == 4)).sum())


# ============================================================================================== recommend
def stocks_steepest_fall_from_peak(data: pd.DataFrame) -> dict:
    import pandas as pd

    falls = {}
    for symbol, rows in data.sort_values("date").groupby("symbol"):
        peak, last = rows["price"].max(), rows["price"].iloc[-1]
        falls[symbol] = (peak - last) / peak * 100
    falls_s = pd.Series(falls)
    winner = _argmax(falls_s)
    return _result(winner, fall_from_peak_pct=falls_s[winner])


def penguins_largest_sex_gap(data: pd.DataFrame) -> dict:
    means = data.groupby(["species", "sex"])["body_mass_g"].mean().unstack("sex")
    gaps = means["male"] - means["female"]
    species = _argmax(gaps)
    return _result(species, male_minus_female_g=gaps[species])


def weather_driest_month_for_event(data: pd.DataFrame) -> dict:
    means = data.groupby(data["date"].dt.month)["precipitation"].mean()
    month = _argmin(means)
    return _result(_month_name(month), mean_daily_precipitation=means[month])


def cars_origin_steepest_weight_decline(data: pd.DataFrame) -> dict:
    import pandas as pd

    years = data["Year"].dt.year
    first_year, last_year = years.min(), years.max()
    declines = {}
    for origin, rows in data.groupby("Origin"):
        first = rows.loc[rows["Year"].dt.year == first_year, "Weight_in_lbs"].mean()
        last = rows.loc[rows["Year"].dt.year == last_year, "Weight_in_lbs"].mean()
        declines[origin] = (first - last) / first * 100
    declines_s = pd.Series(declines)
    origin = _argmax(declines_s)
    return _result(origin, weight_decline_pct=declines_s[origin])


# ============================================================================================== all of them
#: Dataset file of each truth function (the suite's ``datasets`` map, for running this module on its own).
FILES = {"penguins": "penguins.csv", "cars": "cars.csv", "stocks": "stocks.csv", "weather": "seattle-weather.csv"}


def _main() -> None:
    import json

    results = {}
    for name, fn in list(globals().items()):
        prefix = name.split("_", 1)[0]
        if callable(fn) and prefix in FILES and not name.startswith("_") and fn.__module__ == __name__:
            results[name] = fn(load(FILES[prefix]))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    _main()
