"""Train the iris classifier into model/ (model.joblib and meta.json).

The data set ships inside python3-sklearn (sklearn/datasets/data), so this
runs with no network: `python3 train.py [--C 1.0] [--version v1]`. The
demo runs it inside the base image to retrain the model.
"""
import argparse
import json
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--version", default="v1")
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "model"))
    a = ap.parse_args()
    iris = load_iris()
    x_tr, x_te, y_tr, y_te = train_test_split(
        iris.data, iris.target, test_size=0.3, random_state=0,
        stratify=iris.target)
    model = LogisticRegression(C=a.C, max_iter=1000).fit(x_tr, y_tr)
    os.makedirs(a.out, exist_ok=True)
    joblib.dump(model, os.path.join(a.out, "model.joblib"))
    meta = {"version": a.version, "algorithm": "logistic_regression",
            "C": a.C, "accuracy": round(model.score(x_te, y_te), 4),
            "classes": [str(c) for c in iris.target_names]}
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(meta, sort_keys=True))


if __name__ == "__main__":
    main()
