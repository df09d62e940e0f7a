"""ISO 4217 active currency codes and their minor-unit exponents (data, not code).

Source: ISO 4217 "List One: Currency, fund and precious metal codes" (the list kept by SIX
Financial Information as ISO 4217 maintenance agency), column "Minor unit". These are facts
copied from that list. `None` means the list says "N.A." (precious metals, SDR, bond-market and
testing units): such codes have no minor unit and Money refuses them.

pycountry ships the same set of codes but not the exponents; tests/ledger/test_money.py checks that
this table and pycountry's list hold exactly the same codes, so a new ISO code (a pycountry
upgrade) fails the test until its exponent is added here.
"""

from __future__ import annotations

from types import MappingProxyType

_ZERO = ("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF").split()
_THREE = "BHD IQD JOD KWD LYD OMR TND".split()
_FOUR = "CLF UYW".split()
# "N.A." in ISO 4217: no minor unit. XAD (Arab Accounting Dinar, a unit of account like XDR) is
# listed without a minor unit as well.
_NOT_APPLICABLE = "XAD XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX".split()
_TWO = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK "
    "LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
    "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS "
    "SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST "
    "XCD XCG YER ZAR ZMW ZWG"
).split()


def _build() -> dict[str, int | None]:
    table: dict[str, int | None] = {}
    groups: list[tuple[list[str], int | None]] = [
        (_ZERO, 0), (_TWO, 2), (_THREE, 3), (_FOUR, 4), (_NOT_APPLICABLE, None),
    ]  # fmt: skip
    for codes, exponent in groups:
        for code in codes:
            if code in table:
                raise RuntimeError(f"currency {code} listed twice")  # a typo in this data file
            table[code] = exponent
    return table


# Upper-case ISO code -> minor-unit exponent (None: no minor unit, refused for money).
ISO_4217_EXPONENTS: MappingProxyType[str, int | None] = MappingProxyType(_build())
