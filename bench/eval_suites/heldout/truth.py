"""Independent pandas ground truth for the held-out suite; writes suite.yaml."""
from pathlib import Path
import pandas as pd, yaml
HERE = Path(__file__).resolve().parent  # the suite's folder (data, suite.yaml)
D = "/work/main/layers/stepcrew/python/stepcrew/data/"
shop = pd.read_csv(str(HERE / "shop_orders.csv"), parse_dates=["order_date"])
bike = pd.read_csv(str(HERE / "bike_share.csv"), parse_dates=["day"])
peng = pd.read_csv(D + "penguins.csv")
cars = pd.read_csv(D + "cars.csv", parse_dates=["Year"])
stocks = pd.read_csv(D + "stocks.csv", parse_dates=["date"])
wx = pd.read_csv(D + "seattle-weather.csv", parse_dates=["date"])
r2 = lambda x: round(float(x), 2)
F = lambda name, v, tol: {"name": name, "value": r2(v), "tolerance": tol}
cases = []
def A(id, goal, ds, typ, entity=None, entities=None, figures=()):
    e = {}
    if entity: e["entity"] = entity
    if entities: e["entities"] = entities
    e["figures"] = list(figures); e["tools"] = ["query_dataset"]
    cases.append({"id": id, "goal": goal, "dataset": ds, "type": typ, "answerable": True, "truth": id.replace("-", "_"), "expect": e})
def U(id, goal, ds, reason):
    cases.append({"id": id, "goal": goal, "dataset": ds, "type": "unanswerable", "answerable": False, "reason": reason})
slug = lambda s: s.lower().replace(" ", "_")

# ---- shop
g = shop.groupby("category")["unit_price"].mean()
A("shop-price-by-category", "What's the average unit price in each product category? Which category is the most expensive on average?",
  "shop", "group_comparison", entity=g.idxmax(), figures=[F(f"mean_price_{slug(k)}", v, 0.05) for k, v in g.items()])
A("shop-return-share", "What percentage of all orders ended up being returned?", "shop", "share",
  figures=[F("returned_pct", (shop.returned == "yes").mean() * 100, 0.1)])
c = shop.country.value_counts()
A("shop-top-country-orders", "Which country placed the most orders, and how many?", "shop", "extremes",
  entity=c.idxmax(), figures=[F("orders", c.max(), 0)])
y = shop.groupby(shop.order_date.dt.year).size()
A("shop-orders-2022-vs-2023", "How did the number of orders change from 2022 to 2023? Give both yearly counts and the change in percent.",
  "shop", "trend", figures=[F("orders_2022", y[2022], 0), F("orders_2023", y[2023], 0), F("change_pct", (y[2023] / y[2022] - 1) * 100, 0.5)])
q = shop.groupby("category")["quantity"].sum().sort_values(ascending=False).head(3)
A("shop-top3-category-quantity", "Top 3 categories by total quantity sold?", "shop", "top_n",
  entities=list(q.index), figures=[F(f"total_qty_{slug(k)}", v, 0) for k, v in q.items()])
rr = shop.groupby("category")["returned"].apply(lambda s: (s == "yes").mean() * 100)
A("shop-recommend-returns", "We want to cut returns. Which product category has the highest return rate, and what one thing would you recommend we do, citing that rate?",
  "shop", "recommendation", entity=rr.idxmax(), figures=[F("return_rate_pct", rr.max(), 0.5)])
A("shop-median-discount-germany", "What is the median discount percentage on orders from Germany?", "shop", "filter_aggregate",
  figures=[F("median_discount_germany", shop.loc[shop.country == "Germany", "discount_pct"].median(), 0)])
A("shop-corr-qty-price", "Is there any relationship between the quantity ordered and the unit price? Give me the Pearson correlation coefficient.",
  "shop", "correlation", figures=[F("pearson_r", shop["quantity"].corr(shop["unit_price"]), 0.01)])
U("shop-forecast-next-month", "Forecast how many orders we will get next month.", "shop", "forecast")
U("shop-why-clothing-returns", "Why do customers send clothing back more often than other products?", "shop", "cause")
U("shop-delivery-time", "What is the average delivery time in days for each country?", "shop", "unknown_column")
U("shop-japan-orders", "What's the total quantity ordered by customers in Japan?", "shop", "unknown_value")

# ---- bike
g = bike.groupby("station")["trips"].mean()
A("bike-trips-by-station", "On average, how many trips per record does each station see? Which station is the busiest?", "bike", "group_comparison",
  entity=g.idxmax(), figures=[F(f"mean_trips_{slug(k)}", v, 0.05) for k, v in g.items()])
g = bike.groupby("bike_type")["revenue_eur"].sum()
A("bike-revenue-by-type", "Total revenue in euros for classic, electric and cargo bikes - which bike type earns the most?", "bike", "group_comparison",
  entity=g.idxmax(), figures=[F(f"total_revenue_{k}", v, 0.5) for k, v in g.items()])
A("bike-corr-temp-trips", "How strongly are temperature and number of trips correlated (Pearson r)?", "bike", "correlation",
  figures=[F("pearson_r", bike["temperature_c"].corr(bike["trips"]), 0.01)])
m = bike.groupby(bike.day.dt.month)["trips"].mean()
A("bike-trips-jan-vs-dec", "Compare the average trips per record in January 2023 and December 2023. By how many percent did it change?", "bike", "trend",
  figures=[F("mean_trips_jan", m[1], 0.05), F("mean_trips_dec", m[12], 0.05), F("change_pct", (m[12] / m[1] - 1) * 100, 0.5)])
mr = bike.groupby(bike.day.dt.to_period("M"))["revenue_eur"].sum()
A("bike-best-revenue-month", "Which month brought in the most total revenue?", "bike", "extremes",
  entity=str(mr.idxmax()), figures=[F("total_revenue", mr.max(), 0.5)])
A("bike-electric-share", "What share of all trips were made on electric bikes, in percent?", "bike", "share",
  figures=[F("electric_share_pct", bike.loc[bike.bike_type == "electric", "trips"].sum() / bike.trips.sum() * 100, 0.1)])
A("bike-university-cargo-duration", "At the University station, what is the mean avg_trip_minutes for cargo bikes?", "bike", "filter_aggregate",
  figures=[F("mean_minutes", bike.loc[(bike.station == "University") & (bike.bike_type == "cargo"), "avg_trip_minutes"].mean(), 0.05)])
U("bike-predict-summer", "Predict how many trips Harbour station will have next summer.", "bike", "forecast")
U("bike-why-winter-drop", "What caused the drop in bike trips during the winter months?", "bike", "cause")
U("bike-rider-age", "What's the average rider age at each station?", "bike", "unknown_column")

# ---- penguins
md = peng.groupby("sex")["bill_depth_mm"].median()
A("penguins-median-bill-depth-sex", "What is the median bill depth for female and for male penguins?", "penguins", "group_comparison",
  figures=[F(f"median_bill_depth_{k}", v, 0.05) for k, v in md.items()])
A("penguins-count-dream", "How many penguins were recorded on Dream island?", "penguins", "filter_aggregate",
  figures=[F("count", (peng.island == "Dream").sum(), 0)])
A("penguins-corr-flipper-mass", "Do penguins with longer flippers weigh more? Report the Pearson correlation between flipper length and body mass.",
  "penguins", "correlation", figures=[F("pearson_r", peng.flipper_length_mm.corr(peng.body_mass_g), 0.01)])
A("penguins-gentoo-male-mass", "Average body mass of male Gentoo penguins?", "penguins", "filter_aggregate",
  figures=[F("mean_mass", peng.loc[(peng.species == "Gentoo") & (peng.sex == "male"), "body_mass_g"].mean(), 0.5)])
U("penguins-emperor-biscoe", "How many Emperor penguins live on Biscoe island?", "penguins", "unknown_value")

# ---- cars
t5 = cars.nlargest(5, "Horsepower")
A("cars-top5-horsepower", "List the 5 cars with the most horsepower.", "cars", "top_n",
  entities=list(t5.Name), figures=[F(f"hp_{i+1}", v, 0) for i, v in enumerate(t5.Horsepower)])
hp = cars.groupby(cars.Year.dt.year)["Horsepower"].mean()
A("cars-hp-1970-vs-1982", "How much did average horsepower change between the 1970 and 1982 model years, in percent?", "cars", "trend",
  figures=[F("mean_hp_1970", hp[1970], 0.05), F("mean_hp_1982", hp[1982], 0.05), F("change_pct", (hp[1982] / hp[1970] - 1) * 100, 0.5)])
ac = cars.groupby("Cylinders")["Acceleration"].mean()
A("cars-accel-by-cylinders", "Group the cars by number of cylinders: which cylinder count has the highest mean Acceleration value?", "cars", "extremes",
  entity=str(ac.idxmax()), figures=[F("mean_acceleration", ac.max(), 0.05)])
A("cars-japan-share", "What percentage of the cars in the dataset are from Japan?", "cars", "share",
  figures=[F("japan_pct", (cars.Origin == "Japan").mean() * 100, 0.1)])
U("cars-safety-rating", "Which car brand has the best crash safety rating?", "cars", "unknown_column")

# ---- stocks
ibm = stocks[stocks.symbol == "IBM"]
row = ibm.loc[ibm.price.idxmax()]
A("stocks-ibm-peak", "What was IBM's highest price in the data, and in which month did it happen?", "stocks", "extremes",
  entity=row.date.strftime("%Y-%m"), figures=[F("max_price", row.price, 0.01)])
ap = stocks.groupby("symbol")["price"].mean()
A("stocks-avg-price-by-symbol", "Give me each company's average share price. Which one has the highest average?", "stocks", "group_comparison",
  entity=ap.idxmax(), figures=[F(f"mean_price_{k.lower()}", v, 0.05) for k, v in ap.items()])
am = stocks[stocks.symbol == "AMZN"].sort_values("date")
A("stocks-amzn-change", "By what percentage did Amazon's price change between the first and the last month in the data?", "stocks", "trend",
  figures=[F("first_price", am.price.iloc[0], 0.01), F("last_price", am.price.iloc[-1], 0.01), F("change_pct", (am.price.iloc[-1] / am.price.iloc[0] - 1) * 100, 0.5)])
gr = stocks.sort_values("date").groupby("symbol")["price"].agg(lambda s: (s.iloc[-1] / s.iloc[0] - 1) * 100)
A("stocks-recommend-worst", "Which stock performed worst from its first to its last price in the data? Recommend one action for a portfolio holding it, based on that percentage.",
  "stocks", "recommendation", entity=gr.idxmin(), figures=[F("change_pct", gr.min(), 0.5)])

# ---- weather
hot = wx.loc[wx.temp_max.idxmax()]
A("weather-hottest-day", "What was the hottest day in the dataset (highest maximum temperature)?", "weather", "extremes",
  entity=hot.date.strftime("%Y-%m-%d"), figures=[F("temp_max", hot.temp_max, 0.05)])
yp = wx.groupby(wx.date.dt.year)["precipitation"].sum()
A("weather-wettest-year", "Total precipitation per year: which year was the wettest?", "weather", "extremes",
  entity=str(yp.idxmax()), figures=[F(f"total_precip_{k}", v, 0.5) for k, v in yp.items()])
A("weather-july-avg-max", "Across all years, what is the average daily maximum temperature in July?", "weather", "filter_aggregate",
  figures=[F("mean_temp_max_july", wx.loc[wx.date.dt.month == 7, "temp_max"].mean(), 0.05)])
U("weather-nonsense", "What colour is the sound of Tuesday's umbrella?", "weather", "no_rule")

suite = {"name": "heldout", "description": "Held-out blind suite", "gate": {"success_min": 0.9, "wrong_but_passed_max": 0},
         "datasets": {"shop": {"file": str(HERE / "shop_orders.csv")}, "bike": {"file": str(HERE / "bike_share.csv")},
                      "penguins": {"file": "penguins.csv"}, "cars": {"file": "cars.csv"}, "stocks": {"file": "stocks.csv"},
                      "weather": {"file": "seattle-weather.csv"}}, "cases": cases}
open(str(HERE / "suite.yaml"), "w").write(yaml.safe_dump(suite, sort_keys=False, width=200, allow_unicode=True))
print(len(cases), sum(c["answerable"] for c in cases))
