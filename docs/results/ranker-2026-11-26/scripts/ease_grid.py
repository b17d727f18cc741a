import numpy as np
exec(open('/tmp/exp14/combo.py').read().split('for k in (10, 50)')[0])
full = data
for variant in (None, 4.0):
    d = full if variant is None else full.subset(full.ratings >= variant)
    for name, sp in (('leave_last_one', splits.leave_last_one(d)), ('temporal', splits.temporal(d))):
        v = validation_view(sp); best = None
        for lam in (100, 200, 400):
            for tau, mix in ((10, 0.1), (10, 0.3), (10, 1.0), (20, 0.3), (20, 1.0), (40, 1.0)):
                res = []
                for view in (v, sp):
                    B = ease(view.train, lam)
                    X = np.zeros((view.train.n_users, view.train.n_items)); X[view.train.users, view.train.items] = mix
                    X = X + recency_X(view.train, tau)
                    res.append(evaluate_on(Scores(view.train.digest(), X @ B), view)[0])
                print(variant, name, 'lam', lam, 'tau', tau, 'mix', mix, 'val', round(res[0]['ndcg@20'],4), 'test', round(res[1]['ndcg@20'],4), round(res[1]['recall@20'],4), flush=True)
