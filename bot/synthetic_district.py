"""A seeded synthetic district for the demo, the tests and the benchmarks.

The district looks like 鄂尔多斯市东胜区: offices of the bureau, market-regulation
stations named after its streets, an enforcement brigade, an item list, an inspector
directory, teams, objects of every kind of art. 3 and declared conflicts. Every file
is UTF-8 CSV with the English header row of SPEC §3, so it can be fed straight to
``shuangsui import KIND FILE``.

The same seed always gives byte-identical files. Each file draws from its own
``random.Random`` (seeded with ``f"{seed}:{kind}"``), so ``write_objects`` gives the
same objects whether it is called alone (the benchmarks) or from
``generate_district``. Objects are streamed, so a million rows cost only time.

The Chinese word lists below are data, not messages.
"""

from __future__ import annotations

import csv
import random
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Generic, TypeVar

# --- Header rows (SPEC §3) ---------------------------------------------------------

HEADERS: dict[str, tuple[str, ...]] = {
    "units": ("id", "name", "kind"),
    "items": ("code", "name", "legal_basis", "specialty", "method"),
    "inspectors": (
        "id", "name", "unit", "certificate_no", "certificate_expiry", "specialties",
        "active", "wecom_userid", "dingtalk_userid",
    ),
    "teams": ("id", "members"),
    "objects": (
        "id", "name", "kind", "industry", "region", "unit", "address", "status",
        "complaints", "abnormal", "serious_violation", "key_sector",
    ),
    "conflicts": ("inspector_id", "object_id", "reason"),
}

# --- Units ---------------------------------------------------------------------------

CREDIT_OFFICE = "U-XYS"

#: Offices (科室): id, name, the specialities their inspectors hold.
OFFICES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (CREDIT_OFFICE, "信用监管室", ()),
    ("U-SPS", "食品安全监管室", ("食品",)),
    ("U-YPS", "药品医疗器械监管室", ("药品",)),
    ("U-TSS", "特种设备安全监察室", ("特种设备",)),
    ("U-ZLS", "产品质量与计量监管室", ("质量", "计量")),
    ("U-JGS", "价格监督检查室", ("价格",)),
    ("U-GGS", "广告与网络交易监管室", ("广告",)),
)

#: Stations (市场监管所): id, name, the streets and towns of their jurisdiction.
STATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("U-JT", "交通市场监督管理所", ("交通街道", "纺织街道")),
    ("U-GY", "公园市场监督管理所", ("公园街道", "民族街道")),
    ("U-LY", "林荫市场监督管理所", ("林荫街道", "幸福街道")),
    ("U-JS", "建设市场监督管理所", ("建设街道", "巴音门克街道")),
    ("U-FX", "富兴市场监督管理所", ("富兴街道", "兴胜街道")),
    ("U-TJ", "天骄市场监督管理所", ("天骄街道",)),
    ("U-HEL", "诃额伦市场监督管理所", ("诃额伦街道",)),
    ("U-HT", "罕台市场监督管理所", ("罕台镇", "铜川镇", "泊尔江海子镇")),
)

BRIGADE = ("U-ZFD", "综合行政执法大队")

#: Relative number of registered entities per street (the old town is densest).
REGION_WEIGHTS: dict[str, float] = {
    "交通街道": 11, "纺织街道": 6, "公园街道": 10, "民族街道": 7, "林荫街道": 9,
    "幸福街道": 6, "建设街道": 9, "巴音门克街道": 7, "富兴街道": 8, "兴胜街道": 5,
    "天骄街道": 8, "诃额伦街道": 6, "罕台镇": 4, "铜川镇": 2, "泊尔江海子镇": 2,
}

ROADS: tuple[str, ...] = (
    "鄂尔多斯西街", "鄂尔多斯东街", "伊金霍洛西街", "伊金霍洛东街", "达拉特南路",
    "达拉特北路", "准格尔南路", "准格尔北路", "天骄南路", "天骄北路", "宝日陶亥西街",
    "宝日陶亥东街", "吉劳庆南路", "吉劳庆北路", "杭锦南路", "杭锦北路", "乌审西街",
    "乌审东街", "那日松南路", "林荫路", "民族街", "纺织街", "兴胜路", "罕台大街",
    "铜川路", "巴音门克路", "诃额伦路", "团结路", "文明路", "育才路",
)

# --- Items (抽查事项清单) -------------------------------------------------------------

ITEMS: tuple[tuple[str, str, str, str, str], ...] = (
    ("A01", "企业公示信息情况检查", "《企业信息公示暂行条例》第十四条", "", "书面"),
    ("A02", "个体工商户年度报告信息检查", "《个体工商户年度报告暂行办法》第十一条", "", "书面"),
    ("A03", "农民专业合作社年度报告信息检查", "《农民专业合作社年度报告公示暂行办法》第九条", "", "书面"),
    ("A04", "市场主体登记事项检查", "《中华人民共和国市场主体登记管理条例》第三十五条", "", "实地"),
    ("A05", "食品经营者落实主体责任情况检查", "《中华人民共和国食品安全法》第一百一十条", "食品", "实地"),
    ("A06", "餐饮服务食品安全检查", "《食品生产经营监督检查管理办法》第十四条", "食品", "实地"),
    ("A07", "食品生产者生产行为检查", "《中华人民共和国食品安全法》第一百一十条", "食品", "实地"),
    ("A08", "特种设备使用单位检查", "《中华人民共和国特种设备安全法》第五十七条", "特种设备", "实地"),
    ("A09", "电梯维护保养单位检查", "《特种设备安全监察条例》第五十条", "特种设备", "实地"),
    ("A10", "药品零售企业经营行为检查", "《中华人民共和国药品管理法》第九十九条", "药品", "实地"),
    ("A11", "医疗器械经营企业检查", "《医疗器械监督管理条例》第七十条", "药品", "实地"),
    ("A12", "化妆品经营者检查", "《化妆品监督管理条例》第四十六条", "药品", "实地"),
    ("A13", "计量器具使用情况检查", "《中华人民共和国计量法》第十八条", "计量", "实地"),
    ("A14", "定量包装商品净含量检查", "《定量包装商品计量监督管理办法》第十五条", "计量", "实地"),
    ("A15", "生产领域产品质量监督抽查", "《中华人民共和国产品质量法》第十五条", "质量", "实地"),
    ("A16", "流通领域商品质量抽查", "《流通领域商品质量监督管理办法》第十九条", "质量", "实地"),
    ("A17", "广告发布行为检查", "《中华人民共和国广告法》第四十九条", "广告", "网络"),
    ("A18", "互联网广告检查", "《互联网广告管理办法》第二十七条", "广告", "网络"),
    ("A19", "价格公示（明码标价）检查", "《中华人民共和国价格法》第三十四条", "价格", "实地"),
    ("A20", "网络交易经营者检查", "《网络交易监督管理办法》第三十五条", "", "网络"),
    ("A21", "商标使用行为检查", "《中华人民共和国商标法》第六十二条", "", "实地"),
)

# --- People ----------------------------------------------------------------------------

#: Surnames with the romanisation used for platform user ids, roughly by frequency.
SURNAMES: tuple[tuple[str, str], ...] = (
    ("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"),
    ("杨", "Yang"), ("赵", "Zhao"), ("高", "Gao"), ("郭", "Guo"), ("马", "Ma"),
    ("孙", "Sun"), ("周", "Zhou"), ("吴", "Wu"), ("徐", "Xu"), ("白", "Bai"),
    ("乔", "Qiao"), ("贺", "He"), ("苏", "Su"), ("韩", "Han"), ("田", "Tian"),
    ("杜", "Du"), ("任", "Ren"), ("郝", "Hao"), ("武", "Wu"), ("冯", "Feng"),
    ("薛", "Xue"), ("常", "Chang"), ("康", "Kang"), ("奇", "Qi"), ("云", "Yun"),
)
SURNAME_WEIGHTS = (
    10, 9, 9, 8, 6, 5, 5, 4, 4, 4, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1,
)

GIVEN_CHARS: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"),
    ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"),
    ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("涛", "tao"), ("明", "ming"),
    ("超", "chao"), ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("慧", "hui"),
    ("建", "jian"), ("国", "guo"), ("海", "hai"), ("晓", "xiao"), ("宇", "yu"),
    ("婷", "ting"), ("鹏", "peng"), ("飞", "fei"), ("红", "hong"), ("玉", "yu"),
    ("文", "wen"), ("志", "zhi"), ("瑞", "rui"), ("佳", "jia"), ("雪", "xue"),
)

#: Mongolian given names, used alone, as many Ordos colleagues are called.
MONGOLIAN_NAMES: tuple[tuple[str, str], ...] = (
    ("巴特尔", "Bateer"), ("其木格", "Qimuge"), ("乌日娜", "Wurina"), ("斯琴", "Siqin"),
    ("萨仁", "Saren"), ("图雅", "Tuya"), ("朝鲁", "Chaolu"), ("那日苏", "Narisu"),
    ("宝音", "Baoyin"), ("格日勒", "Gerile"), ("乌云", "Wuyun"), ("额尔敦", "Eerdun"),
)

#: Unit id -> (speciality, probability) for its inspectors.
STATION_SPECIALTIES = (("食品", 0.6), ("特种设备", 0.15), ("计量", 0.15), ("价格", 0.15),
                       ("质量", 0.1), ("药品", 0.1), ("广告", 0.05))
BRIGADE_SPECIALTIES = (("食品", 0.3), ("药品", 0.2), ("特种设备", 0.2), ("质量", 0.2),
                       ("计量", 0.15), ("价格", 0.2), ("广告", 0.2))

CONFLICT_REASONS = (
    "亲属关系", "曾任职或有经济往来", "配偶在该单位任职", "近亲属系该企业股东",
    "曾为该企业提供咨询服务",
)

# --- Objects -----------------------------------------------------------------------------

#: Art. 3 kinds with their share of the directory (%).
KIND_WEIGHTS: dict[str, float] = {
    "个体工商户": 62, "有限责任公司": 22, "分支机构": 3.5, "个人独资企业": 2,
    "农民专业合作社": 1.5, "合伙企业": 0.6, "股份有限公司": 0.6, "非公司企业法人": 0.5,
    "外国(地区)企业": 0.05, "产品": 4, "项目": 1.5, "行为": 1.75,
}
NON_MARKET_KINDS = ("产品", "项目", "行为")
MARKET_KINDS = tuple(k for k in KIND_WEIGHTS if k not in NON_MARKET_KINDS)

#: Industry -> (shop words of 个体工商户, words in company names).
INDUSTRIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "餐饮服务": (("饭店", "面馆", "火锅店", "烧烤店", "小吃部", "羊肉馆", "奶茶店", "快餐店",
                  "手把肉馆"), ("餐饮管理", "餐饮服务")),
    "食品销售": (("便利店", "超市", "副食店", "水果店", "粮油店", "鲜肉店", "奶食品店",
                  "烟酒店"), ("食品", "商贸")),
    "批发零售": (("商行", "五金店", "服装店", "日杂店", "建材店", "家电商行", "文具店",
                  "母婴店"), ("商贸", "贸易")),
    "住宿": (("宾馆", "旅馆", "快捷酒店", "民宿"), ("酒店管理",)),
    "建筑": (("装饰部", "水电安装部"), ("建筑工程", "建设工程", "装饰工程")),
    "制造业": (("加工部", "门窗加工厂", "印刷厂"), ("机械制造", "新材料", "建材")),
    "药品零售": (("大药房", "药店", "医疗器械店"), ("医药", "大药房")),
    "特种设备使用": (("锅炉房",), ("物业服务", "热力", "燃气")),
    "广告": (("广告部", "图文快印店", "喷绘部"), ("广告传媒", "文化传媒")),
    "互联网服务": (("网店", "电商工作室"), ("网络科技", "信息技术")),
    "居民服务": (("理发店", "美容院", "洗衣店", "摄影部", "家政服务部"), ("家政服务",)),
    "机动车维修": (("汽修部", "洗车行", "轮胎店", "汽车美容店"), ("汽车服务",)),
    "采矿业": ((), ("能源", "煤业", "矿业")),
    "交通运输": (("货运部",), ("物流", "运输")),
    "房地产": ((), ("房地产开发", "置业")),
    "租赁和商务服务": (("劳务服务部",), ("商务咨询", "企业管理")),
    "农业": (("养殖场", "种植园"), ("种植", "肉羊养殖", "蔬菜种植", "农机服务")),
}

SOLE_TRADER_INDUSTRIES = {
    "餐饮服务": 28, "食品销售": 22, "批发零售": 24, "居民服务": 10, "机动车维修": 5,
    "住宿": 3, "药品零售": 1, "广告": 2, "互联网服务": 2, "制造业": 1, "建筑": 1,
    "交通运输": 1,
}
COMPANY_INDUSTRIES = {
    "批发零售": 22, "建筑": 14, "租赁和商务服务": 10, "餐饮服务": 6, "食品销售": 5,
    "制造业": 7, "互联网服务": 6, "采矿业": 4, "房地产": 4, "交通运输": 5,
    "特种设备使用": 4, "药品零售": 3, "广告": 4, "住宿": 2, "居民服务": 4,
}
#: Industries of 涉及人民群众生命财产安全 (art. 11): often flagged as key sectors.
KEY_INDUSTRIES = frozenset({"餐饮服务", "食品销售", "药品零售", "特种设备使用", "采矿业"})

TRADE_NAME_CHARS = "鑫盛源恒泰隆华达丰宏瑞祥顺安博诚信通广嘉福兴金鼎聚德润昌盈康美佳蒙伊鹏远宇晟"

#: Non-market objects: name pattern ({brand} / {place}) and industry.
NON_MARKET_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "产品": (("{brand}牌电动自行车", "制造业"), ("{brand}牌儿童玩具", "批发零售"),
             ("{brand}牌家用燃气灶具", "制造业"), ("{brand}牌电线电缆", "制造业"),
             ("{brand}牌预包装食品", "食品销售"), ("{brand}牌化妆品", "批发零售"),
             ("{brand}牌车用汽油", "批发零售"), ("{brand}牌羊绒衫", "制造业")),
    "项目": (("{place}小区电梯安装项目", "特种设备使用"), ("{place}商业综合体建设项目", "建筑"),
             ("{place}燃气管道改造项目", "建筑"), ("{place}供热锅炉改造项目", "特种设备使用")),
    "行为": (("{place}商场促销价格行为", "批发零售"), ("{brand}户外广告发布行为", "广告"),
             ("{place}农贸市场计量行为", "批发零售"), ("{brand}网络直播营销行为", "互联网服务")),
}
PLACES = ("万正", "铜川", "金辉", "伊泰", "东达", "宝日", "天骄", "罕台", "民族", "林荫")

#: Unified social credit code alphabet (GB 32100-2015) and check weights.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_CHARS)}
AREA_CODE = "150602"  # 鄂尔多斯市东胜区

ProgressFn = Callable[[str, int, int], None]
Rand = Callable[[], float]
_T = TypeVar("_T")


# --- Small helpers ---------------------------------------------------------------------


class _Weighted(Generic[_T]):
    """Picks from a fixed table with weights, in O(log n), from a given generator."""

    def __init__(self, weights: Mapping[_T, float] | Sequence[tuple[_T, float]]):
        pairs = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
        self.values = [v for v, _ in pairs]
        self.cumulative = list(accumulate(w for _, w in pairs))
        self.total = self.cumulative[-1]

    def pick(self, rand: Rand) -> _T:
        return self.values[bisect(self.cumulative, rand() * self.total)]


# ``random.choice`` and ``randrange`` cost several times more than one ``random()``;
# the object rows, a dozen draws each, use these instead.
def _one(rand: Rand, seq: Sequence[_T]) -> _T:
    return seq[int(rand() * len(seq))]


def _int(rand: Rand, low: int, high: int) -> int:
    """An integer in ``[low, high)``."""
    return low + int(rand() * (high - low))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _write_csv(path: Path, kind: str, rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADERS[kind])
        writer.writerows(rows)
    return path


def uscc(prefix: str, serial: int) -> str:
    """A unified social credit code with a valid check character.

    Args:
        prefix: Registration authority and type, e.g. ``"91"`` (enterprise),
            ``"92"`` (个体工商户), ``"93"`` (农民专业合作社).
        serial: Any integer below 31**7; distinct serials give distinct codes.
    """
    head = prefix + AREA_CODE + "MA"
    total = _uscc_head_sum(head)
    serial, low = divmod(serial, 961)
    serial, middle = divmod(serial, 961)
    top, high = divmod(serial, 961)
    chunks = (_USCC_TOP[top % 31], _USCC_PAIRS[0][high], _USCC_PAIRS[1][middle],
              _USCC_PAIRS[2][low])
    total += sum(weight for _, weight in chunks)
    return head + "".join(chars for chars, _ in chunks) + _USCC_CHARS[-total % 31]


@cache
def _uscc_head_sum(head: str) -> int:
    return sum(_USCC_VALUE[c] * w for c, w in zip(head, _USCC_WEIGHTS))


def _uscc_chunks(positions: tuple[int, ...]) -> list[tuple[str, int]]:
    """Every value of the serial digits at ``positions``: (characters, weighted sum)."""
    chunks = [("", 0)]
    for position in positions:
        chunks = [(chars + c, total + v * _USCC_WEIGHTS[position])
                  for chars, total in chunks for v, c in enumerate(_USCC_CHARS)]
    return chunks


# The seven serial characters (positions 10-16) looked up one or two at a time.
_USCC_TOP = _uscc_chunks((10,))
_USCC_PAIRS = (_uscc_chunks((11, 12)), _uscc_chunks((13, 14)), _uscc_chunks((15, 16)))


# --- Units, items ------------------------------------------------------------------------


def unit_rows() -> list[tuple[str, str, str]]:
    """The bureau's units: offices, stations, the brigade."""
    rows = [(uid, name, "office") for uid, name, _ in OFFICES]
    rows += [(uid, name, "station") for uid, name, _ in STATIONS]
    rows.append((*BRIGADE, "brigade"))
    return rows


# --- Inspectors, teams -------------------------------------------------------------------


def _inspector_counts(total: int) -> dict[str, int]:
    """Spread ``total`` inspectors over units by weight: at least two per station."""
    weights: dict[str, float] = {uid: (6 if uid == CREDIT_OFFICE else 4) for uid, _, _ in OFFICES}
    weights |= {uid: 9.5 for uid, _, _ in STATIONS}
    weights[BRIGADE[0]] = 14
    minimum = {uid: (2 if uid in _station_ids() else 1) for uid in weights}
    if total < sum(minimum.values()):
        raise ValueError(f"need at least {sum(minimum.values())} inspectors, got {total}")
    scale = total / sum(weights.values())
    counts = {uid: max(minimum[uid], int(w * scale)) for uid, w in weights.items()}
    order = sorted(weights, key=lambda uid: (-(weights[uid] * scale) % 1, uid))
    i = 0
    while (diff := total - sum(counts.values())) != 0:
        uid = order[i % len(order)]
        if diff > 0 or counts[uid] > minimum[uid]:
            counts[uid] += 1 if diff > 0 else -1
        i += 1
    return counts


def _station_ids() -> tuple[str, ...]:
    return tuple(uid for uid, _, _ in STATIONS)


def _specialties(rng: random.Random, unit: str) -> list[str]:
    office = {uid: spec for uid, _, spec in OFFICES}
    if unit in office:  # office staff hold their office's speciality, some only the first
        return list(office[unit] if rng.random() < 0.85 else office[unit][:1])
    table = BRIGADE_SPECIALTIES if unit == BRIGADE[0] else STATION_SPECIALTIES
    return [spec for spec, p in table if rng.random() < p][:2]


def _person_name(rng: random.Random, surnames: _Weighted) -> tuple[str, str]:
    if rng.random() < 0.08:
        return rng.choice(MONGOLIAN_NAMES)
    surname, roman = SURNAMES[surnames.pick(rng.random)]
    chars = rng.sample(GIVEN_CHARS, rng.choice((1, 2, 2)))
    return (surname + "".join(c for c, _ in chars),
            roman + "".join(p for _, p in chars).capitalize())


def _expiry(rng: random.Random, *, expired: bool) -> date:
    if expired:
        start, days = date(2025, 1, 15), 420  # expired in 2025 or early 2026
    else:
        start, days = date(2027, 1, 1), 3 * 365
    return start + timedelta(days=rng.randrange(days))


def inspector_rows(seed: int, count: int) -> list[list[str]]:
    """The inspector directory: a few expired certificates and inactive people.

    The first two inspectors of every station are always active and qualified, so
    each station can staff a 小随机 draw on its own.
    """
    rng = random.Random(f"{seed}:inspectors")
    surnames = _Weighted([(i, w) for i, w in enumerate(SURNAME_WEIGHTS)])
    rows, names, userids = [], set(), set()
    serial = 0
    for unit, n in _inspector_counts(count).items():
        for k in range(n):
            serial += 1
            name, roman = _person_name(rng, surnames)
            while name in names:
                name, roman = _person_name(rng, surnames)
            names.add(name)
            userid = roman
            while userid in userids:
                userid = f"{roman}{rng.randrange(2, 100)}"
            userids.add(userid)
            protected = k < 2 and unit in _station_ids()
            expired = not protected and rng.random() < 0.05
            active = protected or rng.random() > 0.04
            issued = rng.choice((19, 20, 21, 22, 23, 24))
            rows.append([
                f"I{serial:04d}", name, unit, f"{AREA_CODE}{issued}{serial:03d}",
                _expiry(rng, expired=expired).isoformat(),
                ";".join(_specialties(rng, unit)), _flag(active),
                userid if rng.random() > 0.03 else "",
                f"0{rng.randrange(10**13, 10**14)}{serial:03d}" if rng.random() > 0.1 else "",
            ])
    return rows


def _eligible(row: Sequence[str]) -> bool:
    return row[6] == "true" and row[4] >= "2027-01-01"


def team_rows(seed: int, inspectors: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Teams (编组) of two or three eligible inspectors, mostly of one station.

    Every fifth team mixes the brigade with an office.
    """
    rng = random.Random(f"{seed}:teams")
    pools: dict[str, list[str]] = {}
    for row in inspectors:
        if _eligible(row):
            pools.setdefault(row[2], []).append(row[0])
    for pool in pools.values():
        rng.shuffle(pool)
    offices = [uid for uid, _, _ in OFFICES]
    stations = list(_station_ids())
    teams: list[list[str]] = []
    for i in range(max(1, round(len(inspectors) / 8))):
        size = 3 if rng.random() < 0.3 else 2
        if i % 5 == 4:
            donors = [BRIGADE[0], *rng.sample(offices, len(offices))]
        else:
            donors = [stations[i % len(stations)]]
        members: list[str] = []
        for uid in donors * size:
            if len(members) < size and pools.get(uid):
                members.append(pools[uid].pop())
        if len(members) >= 2:
            teams.append(sorted(members))
    return [(f"T{i + 1:02d}", ";".join(m)) for i, m in enumerate(teams)]


# --- Objects -------------------------------------------------------------------------------


def _regions(units: Sequence[str] | None) -> _Weighted:
    """Weighted (region, jurisdiction unit) pairs; custom units take streets in turn."""
    if units is None:
        pairs = [(r, uid) for uid, _, regions in STATIONS for r in regions]
    else:
        pairs = [(r, units[i % len(units)]) for i, r in enumerate(REGION_WEIGHTS)]
    return _Weighted([(pair, REGION_WEIGHTS[pair[0]]) for pair in pairs])


def _trade_name(rand: Rand) -> str:
    return _one(rand, TRADE_NAME_CHARS) + _one(rand, TRADE_NAME_CHARS)


def _market_name(rand: Rand, kind: str, industry: str) -> str:
    shops, words = INDUSTRIES[industry]
    trade, word = _trade_name(rand), _one(rand, words)
    city = _one(rand, ("鄂尔多斯市", "鄂尔多斯市", "内蒙古", "鄂尔多斯市东胜区"))
    if kind == "个体工商户":
        owner = rand()
        if owner < 0.2:
            trade = "老" + SURNAMES[_int(rand, 0, 12)][0] + "家"
        elif owner < 0.3:
            trade = SURNAMES[_int(rand, 0, 20)][0] + "记"
        return f"东胜区{trade}{_one(rand, shops) if shops else '经营部'}"
    if kind == "有限责任公司":
        return f"{city}{trade}{word}有限{'责任' if rand() < 0.6 else ''}公司"
    if kind == "股份有限公司":
        return f"{city}{trade}{word}股份有限公司"
    if kind == "分支机构":  # of a company registered elsewhere
        parent = _one(rand, ("内蒙古", "鄂尔多斯市", "包头市", "呼和浩特市"))
        return f"{parent}{trade}{word}有限公司东胜{_one(rand, ('分公司', '分店', '营业部'))}"
    if kind == "个人独资企业":
        return f"鄂尔多斯市东胜区{trade}{word}{_one(rand, ('商行', '经销部', '服务中心'))}"
    if kind == "合伙企业":
        return f"鄂尔多斯市{trade}{word}合伙企业（{_one(rand, ('有限合伙', '普通合伙'))}）"
    if kind == "农民专业合作社":
        return f"鄂尔多斯市东胜区{trade}{word}农民专业合作社"
    if kind == "非公司企业法人":  # 全民/集体所有制: "公司" without "有限"
        return f"鄂尔多斯市东胜区{trade}{word}{_one(rand, ('公司', '公司', '经营部'))}"
    country = _one(rand, ("韩国", "日本", "新加坡", "香港", "德国"))
    return f"{country}{trade}{word}有限公司东胜{_one(rand, ('项目部', '经营处'))}"


def _address(rand: Rand, region: str, kind: str) -> str:
    street = f"东胜区{region}{_one(rand, ROADS)}{_int(rand, 1, 300)}号"
    if kind == "个体工商户":
        return street + (f"{_int(rand, 1, 40)}号底商" if rand() < 0.4 else "")
    return street + f"{_int(rand, 1, 30)}号楼{_int(rand, 1, 25) * 100 + _int(rand, 1, 20)}室"


def iter_objects(n: int, *, seed: int = 2026,
                 units: Sequence[str] | None = None) -> Iterator[list[str]]:
    """Yield ``n`` object rows (SPEC §3 column order), streaming.

    Args:
        n: How many rows.
        seed: The district seed.
        units: Jurisdiction unit ids; default the stations of ``STATIONS``, each
            with its own streets. Custom ids take the streets in turn.
    """
    rng = random.Random(f"{seed}:objects")
    kinds, regions = _Weighted(KIND_WEIGHTS), _regions(units)
    sole, company = _Weighted(SOLE_TRADER_INDUSTRIES), _Weighted(COMPANY_INDUSTRIES)
    # An affine map modulo 31**7 turns the row number into a unique, random-looking serial.
    stride, offset = 31 * rng.randrange(10**6, 10**7) + 1, rng.randrange(31**7)
    non_market = dict.fromkeys(NON_MARKET_KINDS, 0)
    rand = rng.random
    for i in range(n):
        kind = kinds.pick(rand)
        region, unit = regions.pick(rand)
        status, complaints, abnormal, serious = "active", 0, False, False
        if kind in non_market:
            non_market[kind] += 1
            object_id = f"P-{kind}-{non_market[kind]:06d}"
            template, industry = _one(rand, NON_MARKET_TEMPLATES[kind])
            name = template.format(brand=_trade_name(rand), place=_one(rand, PLACES))
            address = f"东胜区{region}" if kind != "产品" else ""
            complaints = 1 if rand() < 0.05 else 0
        else:
            serial = (i * stride + offset) % 31**7
            if kind == "个体工商户":
                object_id, industry = uscc("92", serial), sole.pick(rand)
            elif kind == "农民专业合作社":
                object_id, industry = uscc("93", serial), "农业"
            else:
                object_id, industry = uscc("91", serial), company.pick(rand)
            name = _market_name(rand, kind, industry)
            address = _address(rand, region, kind)
            status = "deregistered" if rand() < 0.04 else "active"
            roll = rand()
            complaints = 0 if roll < 0.9 else 1 if roll < 0.96 else _int(rand, 2, 6)
            serious = kind != "个体工商户" and rand() < 0.004
            # Most serious violators got there through three years on the abnormal list.
            abnormal = rand() < (0.02 if kind == "个体工商户" else 0.05) or serious
        key_sector = rand() < (0.3 if industry in KEY_INDUSTRIES else 0.01)
        yield [object_id, name, kind, industry, region, unit, address, status,
               str(complaints), _flag(abnormal), _flag(serious), _flag(key_sector)]


def write_objects(path: Path, n: int, *, seed: int = 2026,
                  units: Sequence[str] | None = None,
                  progress: ProgressFn | None = None) -> list[tuple[str, str]]:
    """Write ``n`` objects to ``path`` as CSV, streaming.

    Args:
        path: The CSV file to write.
        n: How many objects.
        seed: The district seed.
        units: Jurisdiction unit ids (see ``iter_objects``).
        progress: Called as ``progress("objects", done, n)`` every 10,000 rows and
            at the end.

    Returns:
        A spread sample (up to about 4,000) of ``(object id, unit id)`` of active
        market entities, for drawing conflicts against real rows.
    """
    every = max(1, n // 4000)
    sample: list[tuple[str, str]] = []
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADERS["objects"])
        chunk: list[list[str]] = []
        for i, row in enumerate(iter_objects(n, seed=seed, units=units), 1):
            chunk.append(row)
            if i % every == 0 and row[0][0] != "P" and row[7] == "active":
                sample.append((row[0], row[5]))
            if i % 10_000 == 0:
                writer.writerows(chunk)
                chunk.clear()
                if progress:
                    progress("objects", i, n)
        writer.writerows(chunk)
    if progress:
        progress("objects", n, n)
    return sample


# --- Conflicts -----------------------------------------------------------------------------


def conflict_rows(seed: int, inspectors: Sequence[Sequence[str]],
                  sample: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Declared conflicts: mostly station inspectors and entities of their own area."""
    rng = random.Random(f"{seed}:conflicts")
    if not sample:
        return []
    by_unit: dict[str, list[str]] = {}
    for object_id, unit in sample:
        by_unit.setdefault(unit, []).append(object_id)
    field = [row for row in inspectors if row[2] in _station_ids() or row[2] == BRIGADE[0]]
    wanted = min(round(len(inspectors) * 0.3), len(sample))
    pairs: dict[tuple[str, str], str] = {}
    for _ in range(wanted * 4):
        if len(pairs) >= wanted:
            break
        inspector = rng.choice(field)
        objects = by_unit.get(inspector[2]) or [object_id for object_id, _ in sample]
        pairs.setdefault((inspector[0], rng.choice(objects)), rng.choice(CONFLICT_REASONS))
    return [(i, o, reason) for (i, o), reason in sorted(pairs.items())]


# --- The whole district ----------------------------------------------------------------------


def generate_district(out_dir: Path, *, seed: int = 2026, objects: int = 30_000,
                      inspectors: int = 120,
                      progress: ProgressFn | None = None) -> dict[str, Path]:
    """Write a complete synthetic district as CSV files into ``out_dir``.

    Args:
        out_dir: Directory to write into (created if missing).
        seed: Same seed, same bytes.
        objects: Number of objects (30,000 by default; a million takes seconds).
        inspectors: Number of inspectors (at least 2 per station + 1 per other unit).
        progress: Called as ``progress(kind, done, total)`` while writing.

    Returns:
        Kind -> file, in import order: units, items, inspectors, teams, objects,
        conflicts.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    people = inspector_rows(seed, inspectors)
    files = {
        "units": _write_csv(out / "units.csv", "units", unit_rows()),
        "items": _write_csv(out / "items.csv", "items", ITEMS),
        "inspectors": _write_csv(out / "inspectors.csv", "inspectors", people),
        "teams": _write_csv(out / "teams.csv", "teams", team_rows(seed, people)),
    }
    if progress:
        for kind in files:
            progress(kind, 1, 1)
    sample = write_objects(out / "objects.csv", objects, seed=seed, progress=progress)
    files["objects"] = out / "objects.csv"
    files["conflicts"] = _write_csv(out / "conflicts.csv", "conflicts",
                                    conflict_rows(seed, people, sample))
    if progress:
        progress("conflicts", 1, 1)
    return files
