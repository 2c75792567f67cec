from pathlib import Path
import numpy as np, pandas as pd
HERE = Path(__file__).resolve().parent  # the suite's folder (data, suite.yaml)
rng = np.random.default_rng(20240611)

# (a) online shop orders
n = 320
countries = ["Germany", "France", "Spain", "Italy", "Netherlands", "Poland", "Sweden"]
cats = ["Electronics", "Books", "Clothing", "Toys", "Garden", "Kitchen"]
base_price = {"Electronics": 180, "Books": 18, "Clothing": 45, "Toys": 30, "Garden": 60, "Kitchen": 40}
dates = pd.Timestamp("2022-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 730, n)), unit="D")
cat = rng.choice(cats, n, p=[.2, .2, .2, .15, .1, .15])
country = rng.choice(countries, n, p=[.25, .18, .15, .14, .12, .09, .07])
qty = rng.integers(1, 8, n)
price = np.round([base_price[c] * rng.uniform(0.5, 1.6) for c in cat], 2)
disc = rng.choice([0, 5, 10, 15, 20, 25], n, p=[.35, .2, .2, .1, .1, .05]).astype(float)
ret_p = np.where(cat == "Clothing", 0.3, 0.1)
returned = np.where(rng.random(n) < ret_p, "yes", "no")
df = pd.DataFrame({"order_id": [f"ORD-{1000+i}" for i in range(n)], "order_date": dates.strftime("%Y-%m-%d"),
                   "country": country, "category": cat, "quantity": qty, "unit_price": price,
                   "discount_pct": disc, "returned": returned})
for col, k in [("unit_price", 6), ("discount_pct", 5), ("country", 3)]:
    idx = rng.choice(n, k, replace=False)
    df.loc[idx, col] = np.nan
df.to_csv(str(HERE / "shop_orders.csv"), index=False)

# (b) bike-share daily station records
m = 260
stations = ["Harbour", "Old Town", "University", "Central Park", "Riverside"]
bikes = ["classic", "electric", "cargo"]
d2 = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 365, m)), unit="D")
st = rng.choice(stations, m)
bk = rng.choice(bikes, m, p=[.5, .35, .15])
month = d2.month.values
season = 1 + 0.6 * np.sin((month - 4) / 12 * 2 * np.pi)
st_mult = {"Harbour": 1.0, "Old Town": 1.3, "University": 1.6, "Central Park": 0.9, "Riverside": 0.7}
trips = np.round([40 * st_mult[s] * season[i] * (1.2 if b == "electric" else 0.4 if b == "cargo" else 1.0)
                  * rng.uniform(0.7, 1.3) for i, (s, b) in enumerate(zip(st, bk))]).astype(int)
dur = np.round(rng.normal(18, 5, m) + np.where(bk == "cargo", 8, 0), 1)
temp = np.round(8 + 10 * np.sin((month - 4) / 12 * 2 * np.pi) + rng.normal(0, 3, m), 1)
revenue = np.round(trips * np.where(bk == "electric", 3.5, np.where(bk == "cargo", 5.0, 2.0)) * rng.uniform(0.9, 1.1, m), 2)
bdf = pd.DataFrame({"day": d2.strftime("%Y-%m-%d"), "station": st, "bike_type": bk, "trips": trips.astype(float),
                    "avg_trip_minutes": dur, "temperature_c": temp, "revenue_eur": revenue})
for col, k in [("avg_trip_minutes", 6), ("temperature_c", 4), ("trips", 3)]:
    idx = rng.choice(m, k, replace=False)
    bdf.loc[idx, col] = np.nan
bdf["trips"] = bdf["trips"].astype("Int64")
bdf.to_csv(str(HERE / "bike_share.csv"), index=False)
print(df.head(), bdf.head(), df.isna().sum(), bdf.isna().sum(), sep="\n")
