import numpy as np
from pathlib import Path
from prism.service import PrismService
from prism.settings import Settings
from prism.fusion.features import catalog_order, stored_item_features
from prism.ranking.interactions import read_ratings, restrict_items
s = PrismService(Settings())
ids = catalog_order(s.store.all_item_ids())
f = stored_item_features(s.store, s.settings, ids)
data, dropped = restrict_items(read_ratings(Path('/work/shared/data/movielens-100k-mm/ratings.tsv')), ids)
print(len(ids), dropped, {m: a.shape for m, a in f.arrays.items()}, {m: int(k.sum()) for m,k in f.masks.items()})
np.savez('/tmp/exp14/feat.npz', ids=np.array(ids), **{f'x_{m}': a for m, a in f.arrays.items()}, **{f'm_{m}': k for m, k in f.masks.items()},
         users=data.users, items=data.items, ratings=data.ratings, times=data.times, user_ids=np.array(data.user_ids), item_ids=np.array(data.item_ids))
