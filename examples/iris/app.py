"""The example model API: an iris classifier (scikit-learn) behind FastAPI.

GET /healthz answers 503 {"status": "loading"} until the model is loaded,
then 200 {"status": "ready", "model_version": ...}. POST /predict takes
{"features": [[sepal_len, sepal_wid, petal_len, petal_wid], ...]} and
answers {"predictions": [...], "model_version": ...}; GET
/predict?x=5.1,3.5,1.4,0.2 is the same for one row. GET /metrics is the
Prometheus text format: requests and latency per route, the model version.

Knobs for tests, read from the environment at start:
  MODEL_DIR          where model.joblib and meta.json are (default ./model)
  LOAD_DELAY_S       seconds to wait before the model is loaded (slow start)
  LATENCY_MS         added to every /predict
  FAIL_RATE          share (0..1) of /predict answered 500, spread evenly
                     (every 20th request for 0.05), so a short canary
                     step sees the share it was given
  ALLOW_DELAY_PARAM  when "1", /predict?delay_ms=N (at most 30000) sleeps N
                     ms first, so a test can hold a request in flight
  LOADING_STATUS     the status /healthz answers while loading (503; 200
                     mimics APIs that say "ok" before they are ready)
  STOP_DELAY_S       seconds to wait on shutdown, once requests in flight
                     are done (an API that unloads or flushes slowly)
  MLCTL_REVISION     set by mlctl: answers of /predict carry it as
                     "revision", so a client can count who answered

uvicorn handles SIGTERM: it stops accepting, lets requests in flight
finish, then exits; tini (PID 1) passes the signal on.
"""
import asyncio
import json
import os
import threading
import time

import joblib
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (CONTENT_TYPE_LATEST, Counter, Gauge,
                               Histogram, generate_latest)
from pydantic import BaseModel

MODEL_DIR = os.environ.get("MODEL_DIR",
                           os.path.join(os.path.dirname(__file__), "model"))
LOAD_DELAY_S = float(os.environ.get("LOAD_DELAY_S", "0"))
LATENCY_MS = float(os.environ.get("LATENCY_MS", "0"))
FAIL_RATE = float(os.environ.get("FAIL_RATE", "0"))
ALLOW_DELAY_PARAM = os.environ.get("ALLOW_DELAY_PARAM") == "1"
LOADING_STATUS = int(os.environ.get("LOADING_STATUS", "503"))
STOP_DELAY_S = float(os.environ.get("STOP_DELAY_S", "0"))
REVISION = os.environ.get("MLCTL_REVISION")
# FAIL_RATE's error accumulator: a failure each time it reaches 1
fail_acc = {"v": 0.0}

REQUESTS = Counter("http_requests_total", "HTTP requests served",
                   ["route", "method", "code"])
LATENCY = Histogram("http_request_duration_seconds",
                    "Time to answer an HTTP request", ["route"],
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25,
                             .5, 1, 2.5, 5, 10))
MODEL_INFO = Gauge("model_info", "The model served (value 1)",
                   ["version", "algorithm"])
MODEL_LOADED = Gauge("model_loaded", "1 once the model is loaded")

state = {"model": None, "meta": None}
app = FastAPI(title="iris model API")


def load_model():
    if LOAD_DELAY_S > 0:
        time.sleep(LOAD_DELAY_S)
    with open(os.path.join(MODEL_DIR, "meta.json")) as f:
        meta = json.load(f)
    model = joblib.load(os.path.join(MODEL_DIR, "model.joblib"))
    state["meta"] = meta
    state["model"] = model
    MODEL_INFO.labels(meta.get("version", "unknown"),
                      meta.get("algorithm", "unknown")).set(1)
    MODEL_LOADED.set(1)


@app.on_event("startup")
def start_loading():
    # loading in a thread lets /healthz answer 503 meanwhile
    threading.Thread(target=load_model, daemon=True).start()


@app.on_event("shutdown")
def slow_stop():
    if STOP_DELAY_S > 0:
        time.sleep(STOP_DELAY_S)


@app.middleware("http")
async def measure(request: Request, call_next):
    route = request.url.path
    if route not in ("/healthz", "/predict", "/metrics"):
        route = "other"
    t0 = time.perf_counter()
    code = 500
    try:
        response = await call_next(request)
        code = response.status_code
        return response
    finally:
        LATENCY.labels(route).observe(time.perf_counter() - t0)
        REQUESTS.labels(route, request.method, str(code)).inc()


@app.get("/healthz")
def healthz():
    if state["model"] is None:
        return JSONResponse({"status": "loading"},
                            status_code=LOADING_STATUS)
    return {"status": "ready", "model_version": state["meta"]["version"]}


class PredictIn(BaseModel):
    features: list


@app.get("/predict")
async def predict_one(x: str, delay_ms: int = 0):
    """GET /predict?x=5.1,3.5,1.4,0.2: one row, for load generators."""
    try:
        row = [float(v) for v in x.split(",")]
    except ValueError:
        raise HTTPException(status_code=422, detail="x: 4 numbers")
    return await predict(PredictIn(features=[row]), delay_ms)


@app.post("/predict")
async def predict(body: PredictIn, delay_ms: int = 0):
    if ALLOW_DELAY_PARAM and delay_ms > 0:
        await asyncio.sleep(min(delay_ms, 30000) / 1000)
    if LATENCY_MS > 0:
        await asyncio.sleep(LATENCY_MS / 1000)
    if FAIL_RATE > 0:
        fail_acc["v"] += FAIL_RATE
        if fail_acc["v"] >= 1:
            fail_acc["v"] -= 1
            raise HTTPException(status_code=500, detail="injected failure")
    model, meta = state["model"], state["meta"]
    if model is None:
        raise HTTPException(status_code=503, detail="model is loading")
    rows = body.features
    if (not rows or len(rows) > 1000 or
            any(not isinstance(r, list) or len(r) != 4 for r in rows)):
        raise HTTPException(status_code=422,
                            detail="features: 1 to 1000 rows of 4 numbers")
    try:
        labels = model.predict(rows)
    except (TypeError, ValueError) as e:
        raise HTTPException(status_code=422, detail=str(e))
    names = meta.get("classes")
    out = [names[int(i)] if names else int(i) for i in labels]
    answer = {"predictions": out, "model_version": meta["version"]}
    if REVISION:
        answer["revision"] = REVISION
    return answer


@app.get("/metrics")
def metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
