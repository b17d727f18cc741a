import numpy as np
from prism.ranking.interactions import Interactions
from prism.ranking import splits
from prism.ranking.splits import validation_view
from prism.ranking.protocol import evaluate_on
z = np.load('/tmp/exp14/feat.npz')
data = Interactions(z['users'], z['items'], z['ratings'], z['times'], list(z['user_ids']), list(z['item_ids']))
split = splits.leave_last_one(data); vv = validation_view(split)
class Scores:
    def __init__(s, fitted_on, S): s.name, s.fitted_on, s.S = 'x', fitted_on, S
    def score(s, users): return s.S[users]
def norm(a): return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-9)
def content_sim(mods=('text','image','caption','meta'), k=20):
    parts = [norm(z['x_'+m]) * z['m_'+m][:, None] for m in mods]
    x = norm(np.concatenate(parts, 1))
    S = x @ x.T; np.fill_diagonal(S, 0)
    if k:
        thr = -np.sort(-S, 1)[:, k-1:k]; S = np.where(S >= thr, S, 0)
    return S
def ease(train, lam=200):
    X = np.zeros((train.n_users, train.n_items)); X[train.users, train.items] = 1
    G = X.T @ X; G[np.diag_indices_from(G)] += lam; P = np.linalg.inv(G); B = -P / np.diag(P); np.fill_diagonal(B, 0); return B
def recency_X(train, tau=10):
    order = np.lexsort((np.arange(len(train)), train.times, train.users))
    u = train.users[order]; i = train.items[order]
    starts = np.r_[0, np.flatnonzero(np.diff(u)) + 1]; counts = np.diff(np.r_[starts, len(u)])
    pos = np.concatenate([np.arange(c)[::-1] for c in counts])
    X = np.zeros((train.n_users, train.n_items)); np.maximum.at(X, (u, i), np.exp(-pos / tau)); return X
def run(view, beta, S, tau=10):
    B = ease(view.train); X = recency_X(view.train, tau)
    BS = B / np.abs(B).sum(0, keepdims=True).mean()
    SS = S / S.sum(0, keepdims=True).mean()
    return evaluate_on(Scores(view.train.digest(), X @ (BS + beta * SS)), view)[0]
for k in (10, 50):
    S = content_sim(k=k)
    for beta in (0, 0.05, 0.1, 0.3):
        v = run(vv, beta, S); t = run(split, beta, S)
        print('k', k, 'beta', beta, 'val', round(v['ndcg@20'], 4), 'test', round(t['ndcg@20'], 4), round(t['recall@20'], 4), flush=True)
