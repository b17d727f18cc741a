import numpy as np, sys
sys.path.insert(0, '/tmp/exp14')
exec(open('/tmp/exp14/combo.py').read().split('for k in (10, 50)')[0])
def gfcf(train, alpha=0.0, kdim=64, power=0.5):
    R = np.zeros((train.n_users, train.n_items)); R[train.users, train.items] = 1
    du = np.maximum(R.sum(1), 1) ** -power; di = np.maximum(R.sum(0), 1) ** -power
    Rt = du[:, None] * R * di[None, :]
    P = Rt.T @ Rt
    out = P
    if alpha:
        _, _, vt = np.linalg.svd(Rt, full_matrices=False)
        ideal = (di[:, None] ** -1) * (vt[:kdim].T @ vt[:kdim]) * di[None, :]
        out = P + alpha * ideal
    np.fill_diagonal(out, 0)
    return out
for tau in (10,):
  for power in (0.5,):
    for alpha in (0, 0.3):
        res = []
        for view in (vv, split):
            M = gfcf(view.train, alpha, power=power); X = recency_X(view.train, tau)
            res.append(evaluate_on(Scores(view.train.digest(), X @ M), view)[0])
        print('gfcf tau', tau, 'power', power, 'alpha', alpha, 'val', round(res[0]['ndcg@20'],4), 'test', round(res[1]['ndcg@20'],4), round(res[1]['recall@20'],4), flush=True)
    # plain binary row
    M = gfcf(split.train, 0); R = np.zeros((split.train.n_users, split.train.n_items)); R[split.train.users, split.train.items]=1
    t = evaluate_on(Scores(split.train.digest(), R @ M), split)[0]; print('gfcf no recency test', round(t['ndcg@20'],4), round(t['recall@20'],4))
