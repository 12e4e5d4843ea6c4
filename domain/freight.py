"""Freight: the order's fee from the rule, and its split across packages."""

from domain.models import FreightPolicy, FreightRule


def freight_for(goods_cents: int, rule: FreightRule) -> int:
    if rule.free_above_cents is not None and goods_cents >= rule.free_above_cents:
        return 0
    return rule.flat_cents


def allocate_freight(freight_cents: int, goods: list[int], policy: FreightPolicy) -> list[int]:
    """Shares per package, in whole cents, summing exactly to `freight_cents`.

    ONE_PACKAGE puts it all on the most valuable package (the first on ties). SPLIT is
    pro-rata to goods value by largest remainder (equal shares when every value is 0).
    """
    if not goods:
        return []
    if policy is FreightPolicy.ONE_PACKAGE:
        bearer = max(range(len(goods)), key=lambda i: (goods[i], -i))
        return [freight_cents if i == bearer else 0 for i in range(len(goods))]
    weights = goods if sum(goods) > 0 else [1] * len(goods)
    total = sum(weights)
    shares = [freight_cents * w // total for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (-(freight_cents * weights[i] % total), i)
    )
    for i in remainders[: freight_cents - sum(shares)]:
        shares[i] += 1
    return shares
