"""One model × protocol × variant × seed: aggregates, per-user ndcg@20 and recall@20, fit info."""
import json, os, sys, time
import numpy as np, torch
from prism.fusion.features import ItemFeatures
from prism.ranking.interactions import Interactions
from prism.evals.suite import Suite, make_split
from prism.ranking import splits
from prism.ranking.protocol import evaluate_on, validator
from prism.fusion.hybrid import HybridRecommender
from prism.fusion.train import FusionTrainConfig
from prism.evals.baselines import LightGCN, TrainConfig
model_name, protocol, variant, seed, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(int(os.environ.get("THREADS", "3")))
z = np.load(os.environ.get("FEAT", "feat.npz"))
mods = ('text', 'image', 'caption', 'meta')
features = ItemFeatures(list(z['ids']), {m: z['x_'+m] for m in mods}, {m: z['m_'+m] for m in mods})
data = Interactions(z['users'], z['items'], z['ratings'], z['times'], list(z['user_ids']), list(z['item_ids']))
if variant != 'all':
    data = data.subset(data.ratings >= float(variant))
suite = Suite("exp", (protocol,), (None,), (seed,), max_epochs=300)
split = make_split(protocol, data, suite, seed); splits.check_split(split)
if model_name == 'hybrid':
    model = HybridRecommender(features, 'attention', mods, train_config=FusionTrainConfig(max_epochs=epochs, seed=seed, device=os.environ.get('DEVICE', 'auto')))
else:
    model = LightGCN(TrainConfig(seed=seed, max_epochs=300))
t0 = time.perf_counter(); model.fit(split.train, validator(split)); fit = time.perf_counter() - t0
agg, per_user, users = evaluate_on(model, split, features.both())
info = {k: v for k, v in model.info.items() if k not in ('config', 'train_config', 'grid', 'val_ndcg@20')}
out = {"model": model.name, "protocol": protocol, "variant": variant, "seed": seed, "fit_seconds": fit,
       "device": str(getattr(getattr(model, 'content', None), 'info', {}).get('device', 'cpu')),
       "torch": torch.__version__, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
       "aggregates": agg, "info": info, "grid": model.info.get('grid'), "users": users.tolist(),
       "ndcg@20": per_user['ndcg@20'].tolist(), "recall@20": per_user['recall@20'].tolist()}
name = f"{model_name}-{protocol}-{variant}-{seed}.json"
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), name), "w"), default=float)
print(name, round(agg['ndcg@20'], 4), round(agg['recall@20'], 4), round(fit, 1), info.get('lam'), info.get('tau'), info.get('mix'), info.get('w'), info.get('k'), info.get('epochs'), flush=True)
