"""Small directory files for import tests, written as a person's CSV would be."""

from __future__ import annotations

from pathlib import Path

UNITS = "id,name,kind\nU-XY,信用监管室,office\nS-DC,东城市场监管所,station\nS-XC,西城市场监管所,市场监管所\n"
ITEMS = ("code,name,legal_basis,specialty,method\n"
         "A01,企业公示信息检查,《企业信息公示暂行条例》第十四条,,书面\n"
         "A02,食品经营许可检查,《食品安全法》第三十五条,食品,实地\n")
INSPECTORS = ("id,name,unit,certificate_no,certificate_expiry,specialties,active\n"
              "I01,张伟,S-DC,15060001,2028-12-31,食品;特种设备,是\n"
              "I02,王芳,S-DC,15060002,2027-06-30,,true\n"
              "I03,李娜,S-XC,15060003,2026-01-31,食品,1\n"
              "I04,刘洋,S-XC,15060004,2029-01-01,,否\n")
OBJECTS = ("统一社会信用代码,名称,类型,行业,区域,管辖单位,地址,状态,投诉举报数,经营异常,严重违法失信,重点领域\n"
           "91150602MA0N000001,东胜区甲餐饮有限公司,有限责任公司,餐饮服务,林荫街道,S-DC,林荫路1号,存续,2,否,否,是\n"
           "91150602MA0N000002,东胜区乙商店,个体工商户,食品销售,交通街道,S-DC,,在营,0,是,否,否\n"
           "L-产品-0007,散装白酒,产品,食品生产,,S-XC,,,,,,\n")


def write(directory: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = directory / name
    path.write_bytes(text.encode(encoding))
    return path
