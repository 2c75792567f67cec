"""Fixed-seed synthetic datasets for probing the rule engine on unseen schemas."""
from pathlib import Path
import random, csv, datetime as dt
HERE = Path(__file__).resolve().parent  # the suite's folder (data, suite.yaml)

rng = random.Random(20240611)
# sales.csv: 180 orders, 7 regions (more than the profile's top-5 values!), 4 product lines, order_date over 2022-2024
regions = ["North", "South", "East", "West", "Central", "Coastal", "Mountain"]
weights = [0.22, 0.20, 0.18, 0.14, 0.12, 0.08, 0.06]
products = ["Widget", "Gadget", "Gizmo", "Doohickey"]
price = {"Widget": 12.5, "Gadget": 40.0, "Gizmo": 75.0, "Doohickey": 7.25}
rows = []
start = dt.date(2022, 1, 1)
for i in range(180):
    d = start + dt.timedelta(days=rng.randrange(0, 3 * 365))
    r = rng.choices(regions, weights)[0]
    p = rng.choice(products)
    units = rng.randint(1, 40)
    disc = rng.choice([0, 0, 0, 5, 10, 15])
    rev = round(units * price[p] * (1 - disc / 100) * (1 + (d.year - 2022) * 0.08), 2)
    rep = rng.choice(["Ana Ruiz", "Bo Chen", "Cara Diaz", "Dev Patel", "Eli Moss", "Fay Wong"])
    returned = "" if rng.random() < 0.1 else rng.choice(["yes", "no", "no", "no", "no"])
    rows.append({"order_id": f"O{1000+i}", "order_date": d.isoformat(), "region": r, "product": p,
                 "sales_rep": rep, "units": units, "discount_pct": disc, "revenue_usd": rev,
                 "returned": returned})
rows.sort(key=lambda x: (x["order_date"], x["order_id"]))
with open(str(HERE / "sales.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader(); w.writerows(rows)

# employees.csv: 120 employees, camelCase-ish and odd headers, a year-number column
rng = random.Random(7)
depts = ["Engineering", "Sales", "Support", "Finance"]
out = []
for i in range(120):
    dep = rng.choice(depts)
    hire = rng.randint(2012, 2023)
    base = {"Engineering": 98000, "Sales": 72000, "Support": 54000, "Finance": 81000}[dep]
    salary = round(base + rng.gauss(0, 9000) + (2023 - hire) * 1200, 0)
    age = rng.randint(22, 63)
    score = round(min(5.0, max(1.0, rng.gauss(3.4, 0.7))), 1)
    remote = rng.choice(["Yes", "No"])
    out.append({"EmployeeID": f"E{500+i}", "Department": dep, "HireYear": hire, "AnnualSalary": int(salary),
                "Age": age, "PerfScore": score, "Remote": remote})
with open(str(HERE / "employees.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(out[0]))
    w.writeheader(); w.writerows(out)
