"""Does a semantic feature from a CPU embedding (WordLlama l2_supercat, 256-d, weights in the wordllama wheel)
beat the bag-of-words on the exam set? Model selection on the train split only (5-fold CV: L2 strength and the
blend weight with the shipped score); the test split is read once, at the end. Needs `pip install wordllama numpy`
(not dependencies of the gateway). The dev-set side of the comparison: `python -m bench.eval_devset --embedding`.

    python bench/embedding_exam.py

WordLlama 0.4.0.post1 ships its tokenizer in wordllama/tokenizers/ but looks for it under "tokenizer/", so
WordLlama.load() without a cache_dir downloads it from the model hub; cache_dir = the package folder finds both
files in the wheel, and disable_download=True makes sure nothing is fetched.
"""
import json, sys, pathlib, time, random
import numpy as np
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from bench import eval_routing as E
from extproc import classify as C
import wordllama
wl = wordllama.WordLlama.load(cache_dir=pathlib.Path(wordllama.__file__).parent, disable_download=True)
rows = [r for r in E.load(E.DEFAULT_DATA) if r['source'] in ('mmlu', 'gsm8k')]
train = [r for r in rows if r['split'] == 'train']; test = [r for r in rows if r['split'] == 'test']
settings = C.ClassifierSettings()
prep = E.Prepared(rows, settings)
model = C.load_model()
c_ship = json.loads(C.DEFAULT_MODEL_PATH.read_text())['C']
t0 = time.time()
oof_lin = E.out_of_fold(train, prep, c_ship)
rules = E.scores(train, prep, None, 'rules')
bw = model.rules_weight
base_oof = {i: (1 - bw) * v + bw * rules[i] for i, v in oof_lin.items()}
print('base OOF', time.time() - t0, flush=True)
emb = {r['id']: v for r, v in zip(rows, wl.embed([r['prompt'] for r in rows], norm=True).astype(np.float64))}
def F(rs):
    return np.array([np.concatenate([emb[r['id']], [1.0, float(prep.by_id[r['id']][0] == 'mc')]]) for r in rs])
def fit(X, y, lam):
    w = np.zeros(X.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-X @ w)); g = X.T @ (p - y) / len(y) + lam * w
        H = (X * (p * (1 - p))[:, None]).T @ X / len(y) + lam * np.eye(X.shape[1])
        w -= np.linalg.solve(H, g)
    return w
def gain(ws, ww, X):
    return 1 / (1 + np.exp(-X @ ws)) - 1 / (1 + np.exp(-X @ ww))
ids = sorted(r['id'] for r in train); random.Random(0).shuffle(ids)
fold = {i: k % 5 for k, i in enumerate(ids)}
best = None
for lam in (3e-4, 1e-3, 3e-3, 1e-2):
    oof = {}
    for k in range(5):
        fr = [r for r in train if fold[r['id']] != k]; hr = [r for r in train if fold[r['id']] == k]
        Xf = F(fr)
        ws = fit(Xf, np.array([float(r['strong_correct']) for r in fr]), lam)
        ww = fit(Xf, np.array([float(r['weak_correct']) for r in fr]), lam)
        for r, g in zip(hr, gain(ws, ww, F(hr))):
            oof[r['id']] = (g + 1) / 2
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        sc = {i: w * oof[i] + (1 - w) * base_oof[i] for i in oof}
        m = E.apgr([r for r in train if r['source'] == 'mmlu'], sc); g_ = E.apgr([r for r in train if r['source'] == 'gsm8k'], sc)
        print(f'lam {lam} w_emb {w}: train-CV APGR mmlu {m:.3f} gsm8k {g_:.3f} mean {(m + g_) / 2:.3f}', flush=True)
        if best is None or (m + g_) > best[0]:
            best = ((m + g_), lam, w)
print('chosen on train CV:', best, flush=True)
_, lam, w = best
Xt = F(train)
ws = fit(Xt, np.array([float(r['strong_correct']) for r in train]), lam); ww = fit(Xt, np.array([float(r['weak_correct']) for r in train]), lam)
base_test = E.scores(test, prep, model, 'combined', bw)
e = {r['id']: (g + 1) / 2 for r, g in zip(test, gain(ws, ww, F(test)))}
sc = {i: w * e[i] + (1 - w) * base_test[i] for i in e}
for name, s in (('shipped', base_test), ('chosen', sc)):
    print(name, 'TEST APGR mmlu %.3f gsm8k %.3f' % (E.apgr([r for r in test if r['source'] == 'mmlu'], s), E.apgr([r for r in test if r['source'] == 'gsm8k'], s)), flush=True)
