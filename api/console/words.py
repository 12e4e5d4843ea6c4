# ruff: noqa: E501 (a translation table: one phrase per line reads best)
"""The console's words in English and Chinese: what the operator reads, never the code's own
names. A page's language is the operator's choice (a cookie set by the switch in the header),
else the browser's Accept-Language; English otherwise.

`text(lang, s)`: an English phrase of the templates, in `lang` (every phrase the templates
use has its Chinese here: a test reads them out of the templates). `label(lang, kind, value)`:
a status, reason, type or channel as a label. `sentence(lang, event, money)`: a timeline
entry as a sentence."""

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request

LANGS = ("en", "zh")
LANG_COOKIE = "console_lang"


def language(request: Request) -> str:
    """The operator's choice (the switch's cookie), else the first of the browser's
    languages we speak, else English."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGS:
        return chosen
    for part in request.headers.get("accept-language", "")[:200].split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


# ---- labels: (kind, value) -> (English, Chinese) --------------------------------------------

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "OrderStatus": {
        "PENDING_PAYMENT": ("Awaiting payment", "待付款"),
        "PENDING_SHIPMENT": ("Awaiting shipment", "待发货"),
        "SHIPPED": ("Shipped", "已发货"),
        "COMPLETED": ("Completed", "已完成"),
        "CLOSED": ("Closed", "已关闭"),
    },
    "SubStatus": {
        "PARTIALLY_SHIPPED": ("Partly shipped", "部分发货"),
        "REFUNDING": ("Refund in progress", "退款中"),
        "AWAITING_REVIEW": ("Awaiting review", "待评价"),
    },
    "CloseReason": {
        "PAYMENT_TIMEOUT": ("Not paid in time", "超时未支付"),
        "BUYER_CANCELLED": ("Cancelled by the buyer", "买家取消"),
        "SELLER_CLOSED": ("Closed by the merchant", "商家关闭"),
        "OUT_OF_STOCK_AT_PAYMENT": ("Sold out at payment", "付款时缺货"),
        "FULLY_REFUNDED": ("Fully refunded", "全额退款"),
        "PLACEMENT_REJECTED": ("Placement refused", "下单失败"),
        "OPERATOR_CANCELLED": ("Cancelled by an operator", "运营取消"),
        "WORKFLOW_LOST": ("Closed by reconciliation", "对账关闭"),
    },
    "PackageStatus": {
        "PENDING": ("To ship", "待发货"),
        "AWAITING_SUPPLIER": ("Awaiting the supplier", "待供应商采购"),
        "PURCHASED": ("Bought from the supplier", "已向供应商下单"),
        "SHIPPED": ("Shipped", "已发货"),
        "DELIVERED": ("Delivered", "已送达"),
        "RECEIVED": ("Received", "已签收"),
        "REJECTED": ("Refused at the door", "已拒收"),
        "CANCELLED": ("Cancelled", "已取消"),
    },
    "ProductType": {
        "SELF": ("own stock", "自营"),
        "KEPLER": ("Kepler supplier", "开普勒供货"),
        "DROPSHIP": ("drop-shipped", "代发"),
        "VIRTUAL": ("virtual", "虚拟商品"),
    },
    "PaymentChannel": {
        "balance": ("balance", "余额"),
        "credit": ("credit", "信用额度"),
        "alipay": ("Alipay", "支付宝"),
        "wechat": ("WeChat Pay", "微信支付"),
    },
    "RefundStatus": {
        "PENDING": ("Under way", "退款中"),
        "SUCCEEDED": ("Refunded", "已退款"),
        "FAILED": ("Failed", "退款失败"),
    },
    "RefundRequestStatus": {
        "REQUESTED": ("Waiting for you", "待处理"),
        "REFUSED": ("Refused", "已拒绝"),
        "REFUNDED": ("Refunded", "已退款"),
        "FAILED": ("Refund failed", "退款失败"),
    },
    "CaseType": {
        "REFUND_ONLY": ("Refund only", "仅退款"),
        "RETURN_AND_REFUND": ("Return and refund", "退货退款"),
        "EXCHANGE": ("Exchange", "换货"),
    },
    "CaseStatus": {
        "WAIT_SELLER_AGREE": ("Waiting for the merchant's answer", "待商家处理"),
        "WAIT_BUYER_CONFIRM": ("Waiting for the buyer to answer a proposal", "待买家确认方案"),
        "WAIT_BUYER_RETURN": ("Waiting for the buyer to send it back", "待买家退货"),
        "WAIT_SELLER_RECEIVE": ("Waiting for the merchant to receive the return", "待商家收货"),
        "SELLER_REJECTED": ("Rejected by the merchant", "商家已拒绝"),
        "PLATFORM_REVIEW": ("With the platform", "平台介入中"),
        "WAIT_SELLER_RESHIP": ("Waiting for the merchant to ship a replacement", "待商家换新发货"),
        "WAIT_BUYER_RECEIVE": ("Waiting for the buyer to receive the replacement", "待买家收货"),
        "EXCHANGED": ("Exchanged", "换货完成"),
        "REFUNDED": ("Refunded", "退款成功"),
        "CLOSED": ("Closed", "已关闭"),
        "CANCELLED": ("Withdrawn by the buyer", "买家已撤销"),
    },
    "CaseAction": {
        "open": ("opened the case", "发起售后"),
        "agree": ("agreed", "同意"),
        "reject": ("rejected", "拒绝"),
        "propose": ("proposed an amount", "提出协商金额"),
        "confirm-return": ("received the return", "确认收到退货"),
        "return-shipment": ("sent the goods back", "寄回商品"),
        "accept-proposal": ("accepted the proposal", "接受协商方案"),
        "decline-proposal": ("declined the proposal", "拒绝协商方案"),
        "escalate": ("asked the platform to step in", "申请平台介入"),
        "withdraw": ("withdrew the case", "撤销售后"),
        "rule": ("ruled", "平台裁决"),
        "rule: buyer": ("ruled for the buyer", "裁决支持买家"),
        "rule: seller": ("ruled for the merchant", "裁决支持商家"),
        "reship": ("shipped the replacement", "换新发货"),
        "convert-to-refund": ("refunded instead of a replacement", "改为退款"),
        "confirm-receipt": ("confirmed the replacement arrived", "确认收到换新商品"),
        "delivered": ("delivered the replacement", "换新商品已送达"),
        "settled": ("settled the money and stock", "完成退款与库存处理"),
        "goods back on hand": ("put the returned goods back on hand", "退货已入库"),
        "deadline: agreed": ("agreed when the merchant did not answer", "商家超时未处理，自动同意"),
        "deadline: proposal declined": (
            "declined the proposal when the buyer did not answer",
            "买家超时未确认，方案自动拒绝",
        ),
        "deadline: closed": ("closed when the deadline passed", "超时关闭"),
        "deadline: refunded": ("refunded when the deadline passed", "超时自动退款"),
        "deadline: received": ("marked the replacement received in time", "超时自动确认收货"),
    },
    "DeadlineAction": {
        "agreed automatically": ("agreed automatically", "自动同意"),
        "proposal declined automatically": ("proposal declined automatically", "方案自动拒绝"),
        "closed: nothing was sent back": ("closed: nothing was sent back", "关闭：买家未退货"),
        "refunded automatically": ("refunded automatically", "自动退款"),
        "closed: not escalated": ("closed: not escalated", "关闭：未申请平台介入"),
        "converted to a refund": ("converted to a refund", "改为退款"),
        "received automatically": ("received automatically", "自动确认收货"),
    },
    "Actor": {
        "buyer": ("the buyer", "买家"),
        "merchant": ("the merchant", "商家"),
        "admin": ("the platform", "平台"),
        "platform": ("the platform", "平台"),
        "system": ("the system", "系统"),
        "gateway": ("the payment gateway", "支付网关"),
        "carrier": ("the carrier", "承运商"),
        "supplier": ("the supplier", "供应商"),
    },
}


def label(lang: str, kind: str, value: object) -> str:
    """`value` (an enum or its value) of `kind` as a label; an unknown one as it is."""
    raw = getattr(value, "value", value)
    pair = LABELS.get(kind, {}).get(str(raw))
    if pair is None:
        return str(raw)
    return pair[1] if lang == "zh" else pair[0]


# ---- the timeline's sentences ----------------------------------------------------------------

SENTENCES: dict[str, tuple[str, str]] = {
    "PLACED": ("Placed, total {total}", "下单，合计 {total}"),
    "PAID": ("Paid {amount} by {channel} ({txn_id})", "通过{channel}支付 {amount}（{txn_id}）"),
    "SUPPLIER_PURCHASED": (
        "Package {package_id} bought from the supplier (order {supplier_order_id})",
        "包裹 {package_id} 已向供应商下单（{supplier_order_id}）",
    ),
    "PACKAGE_SHIPPED": (
        "Package {package_id} shipped {carrier} {tracking_no}",
        "包裹 {package_id} 已发货 {carrier} {tracking_no}",
    ),
    "PACKAGE_DELIVERED": ("Package {package_id} delivered", "包裹 {package_id} 已送达"),
    "PACKAGE_REJECTED": (
        "Package {package_id} refused at the door; {amount} refunded",
        "包裹 {package_id} 被拒收，退款 {amount}",
    ),
    "PACKAGES_CANCELLED": ("Packages {package_ids} cancelled", "包裹 {package_ids} 已取消"),
    "RETURN_RECEIVED": (
        "Package {package_id} came back: its goods are on hand",
        "包裹 {package_id} 已退回入库",
    ),
    "RECEIPT_CONFIRMED": ("Receipt confirmed: {package_ids}", "确认收货：{package_ids}"),
    "RECEIPT_EXTENDED": ("Receipt extended", "延长收货"),
    "REVIEWED": ("Reviewed: {rating} of 5", "评价：{rating} 星"),
    "CLOSED": ("Closed: {reason}", "订单关闭：{reason}"),
    "CANCEL_REFUSED": ("Cancellation refused: {detail}", "取消失败：{detail}"),
    "REFUND_REQUESTED": ("Refund of {amount} requested", "申请退款 {amount}"),
    "REFUND_REFUSED": ("Refund request {request_id} refused", "退款申请 {request_id} 已拒绝"),
    "REFUND_AGREED": (
        "Refund request {request_id} agreed: {amount}",
        "退款申请 {request_id} 已同意：{amount}",
    ),
    "REFUNDED": ("Refund {id} of {amount}", "退款 {id}：{amount}"),
    "REFUND_SUCCEEDED": ("Refund {refund_id} went through", "退款 {refund_id} 成功"),
    "REFUND_FAILED": ("Refund {refund_id} failed", "退款 {refund_id} 失败"),
    "REFUND_RETRIED": ("Refund {refund_id} tried again", "退款 {refund_id} 已重试"),
    "REFUND_WITHDRAWN": ("Refund request withdrawn", "退款申请已撤回"),
    "CASE_OPENED": (
        "After-sales case {case_id} opened, claim {claim}",
        "售后 {case_id} 发起，申请 {claim}",
    ),
    "CASE_REFUNDED": ("Case {case_id} refunded {amount}", "售后 {case_id} 退款 {amount}"),
    "CASE_CLOSED": ("Case {case_id} ended without a refund", "售后 {case_id} 结束，未退款"),
    "CASE_GOODS_RETURNED": (
        "Case {case_id}: the returned goods are back on hand",
        "售后 {case_id}：退货已入库",
    ),
    "REPLACEMENT_SHIPPED": (
        "Case {case_id}: replacement {package_ids} shipped {carrier} {tracking_no}",
        "售后 {case_id}：换新商品 {package_ids} 已发货 {carrier} {tracking_no}",
    ),
    "CASE_EXCHANGED": ("Case {case_id}: exchanged", "售后 {case_id}：换货完成"),
    "PAYMENT_ANOMALY": (
        "A payment of {amount} ({txn_id}) belonged to order {belongs_to_order}: nothing applied",
        "支付 {amount}（{txn_id}）属于订单 {belongs_to_order}：未入账",
    ),
    "LATE_PAYMENT_REFUNDED": (
        "A payment after the order ended was refunded: {amount}",
        "订单结束后的付款已退回：{amount}",
    ),
    "LATE_PAYMENT_REFUND_FAILED": (
        "A payment after the order ended could not be refunded: {amount}",
        "订单结束后的付款退回失败：{amount}",
    ),
    "ORDER_ERROR": ("A step failed for good ({step}): {reason}", "步骤失败（{step}）：{reason}"),
}


def sentence(lang: str, type_: object, data: Mapping[str, Any], money: Callable[[int], str]) -> str:
    """One order event as a sentence: its amounts in yuan, its lists joined, its reasons
    as labels."""
    raw = str(getattr(type_, "value", type_))
    pair = SENTENCES.get(raw)
    if pair is None:
        return label(lang, "EventType", raw)
    words: defaultdict[str, str] = defaultdict(str)
    for key, value in data.items():
        if isinstance(value, list):
            words[key] = ", ".join(str(v) for v in value)
        elif value is not None:
            words[key] = str(value)
    for key in ("amount_cents", "total_cents", "claim_cents"):
        if isinstance(data.get(key), int):
            words[key.removesuffix("_cents")] = money(data[key])
    if "reason" in data:
        words["reason"] = label(lang, "CloseReason", data["reason"])
    if "channel" in data:
        words["channel"] = label(lang, "PaymentChannel", data["channel"])
    if raw == "PACKAGE_SHIPPED" and data.get("by") == "supplier":
        words["carrier"] = "(supplier)" if lang == "en" else "（供应商发货）"
    template = pair[1] if lang == "zh" else pair[0]
    return " ".join(template.format_map(words).split())


def actor_name(lang: str, kind: str, actor_id: str | None) -> str:
    who = label(lang, "Actor", kind)
    return f"{who} {actor_id}" if actor_id and kind in ("merchant", "admin") else who


# ---- the templates' own phrases ----------------------------------------------------------------

ZH: dict[str, str] = {
    # layout
    "Order saga console": "订单后台",
    "Orders": "订单",
    "After-sales queue": "售后队列",
    "Settlement": "结算",
    "Sign out": "退出",
    "times in": "时区",
    "cases wait for you": "个售后待处理",
    "paid, unshipped for over {hours} h": "个订单付款超过 {hours} 小时未发货",
    "failed refunds": "笔退款失败",
    "cases": "售后待办",
    "unshipped > {hours} h": "超 {hours} 小时未发货",
    "failed": "退款失败",
    "Language": "语言",
    # refusal page
    "Sign in first": "请先登录",
    "Not allowed": "无权操作",
    "Not found": "未找到",
    "Not allowed here": "不支持此操作",
    "Not possible now": "当前不可操作",
    "Too large": "内容过大",
    "Check what was entered": "请检查输入",
    "Too many": "操作过于频繁",
    "Try again shortly": "请稍后重试",
    "Refused": "操作被拒绝",
    "Sign in": "登录",
    # orders list
    "Search": "搜索",
    "order id, buyer, SKU or tracking no.": "订单号、买家、SKU 或运单号",
    "Sort": "排序",
    "newest first": "最新下单",
    "oldest first": "最早下单",
    "paid latest first": "最近付款",
    "paid earliest first": "最早付款",
    "largest total first": "金额从高到低",
    "smallest total first": "金额从低到高",
    "Status": "状态",
    "Sub-status": "子状态",
    "Close reason": "关闭原因",
    "any": "全部",
    "Shop": "店铺",
    "Buyer": "买家",
    "Placed from": "下单日期从",
    "Paid from": "付款日期从",
    "to": "至",
    "has a failed refund": "有退款失败",
    "has an order error": "有订单错误",
    "has an open after-sales case": "有进行中的售后",
    "Paid more than": "付款超过",
    "hours ago and not shipped": "小时仍未发货",
    "Filter": "筛选",
    "More filters": "更多筛选",
    "Clear": "清除",
    "order": "个订单",
    "orders": "个订单",
    "on this page": "本页",
    "Export CSV": "导出 CSV",
    "With the selected orders:": "对选中的订单：",
    "Packing slips": "打印发货单",
    "Shipping sheet (CSV)": "发货表（CSV）",
    "Select": "选择",
    "Order": "订单",
    "Total": "金额",
    "Paid": "已付",
    "Refunded": "已退",
    "Placed": "下单时间",
    "Paid at": "付款时间",
    "Flags": "标记",
    "refund failed": "退款失败",
    "open case": "售后中",
    "No orders match.": "没有符合条件的订单。",
    "First page": "第一页",
    "Next page": "下一页",
    "Ship many packages": "批量发货",
    "bulk ship help": (
        "下载选中订单的发货表，为每行填写快递公司代码（SF、ZTO、YTO 等）和运单号后上传："
        "每行按单个包裹发货，无法发货的行单独拒绝并说明原因。重复上传同一张表不会重复发货。"
    ),
    "Ship the rows": "上传并发货",
    # order page
    "Workflow in the Temporal Web UI": "在 Temporal Web UI 中查看工作流",
    "Ship to": "收货地址",
    "Goods · freight · total": "商品 · 运费 · 合计",
    "Paid · refunded": "已付 · 已退",
    "Pay by": "付款截止",
    "by": "通过",
    "Completed": "完成时间",
    "Closed": "关闭时间",
    "Bought again from": "再次购买自",
    "Close this unpaid order": "关闭未付款订单",
    "Reason": "原因",
    "Close order": "关闭订单",
    "Lines": "商品",
    "Title": "名称",
    "Type": "类型",
    "Quantity": "数量",
    "Unit price": "单价",
    "Packages": "包裹",
    "None yet: packages are made when the order is paid.": "暂无：订单付款后生成包裹。",
    "From": "发货地",
    "goods": "商品",
    "freight": "运费",
    "refunded": "已退",
    "shipped": "发货",
    "delivered": "送达",
    "received": "签收",
    "auto-confirm": "自动确认收货",
    "supplier purchase": "供应商采购",
    "supplier order": "供应商订单",
    "rejected": "拒收",
    "back on hand": "已入库",
    "cancelled": "取消",
    "replacement for case": "换货售后",
    "Carrier": "快递公司",
    "Tracking number": "运单号",
    "Ship package": "发货",
    "Confirm the return arrived": "确认退货已到",
    "Not offered:": "不可操作：",
    "held by refund request {id}: agree or refuse it first": "退款申请 {id} 待处理：请先同意或拒绝",
    "Refund requests": "退款申请",
    "asked": "申请于",
    "agreed automatically at": "自动同意于",
    "refused": "已拒绝",
    "Agree": "同意",
    "Refuse": "拒绝",
    "Payments and refunds": "支付与退款",
    "What": "项目",
    "Id": "编号",
    "Channel": "渠道",
    "Amount": "金额",
    "When": "时间",
    "payment": "付款",
    "refund": "退款",
    "Captured": "已收款",
    "Retry refund": "重试退款",
    "No money has moved.": "尚无资金往来。",
    "After-sales cases": "售后",
    "claim": "申请金额",
    "deadline": "截止",
    "Timeline": "时间线",
    # case page
    "After-sales case": "售后",
    "Description": "描述",
    "Claim": "申请金额",
    "proposed": "协商金额",
    "agreed": "同意金额",
    "Return": "退货物流",
    "Deadline": "截止时间",
    "then": "届时",
    "Refund": "退款",
    "Settling": "处理中",
    "the order is moving the money and stock": "订单正在处理退款与库存",
    "Evidence": "凭证",
    "Replacement": "换新商品",
    "Package": "包裹",
    "of": "属于",
    "Actions": "操作",
    "Amount (¥)": "金额（元）",
    "For": "支持",
    "the buyer (refund)": "买家（退款）",
    "the seller (close)": "商家（关闭）",
    "Note": "备注",
    "Reject": "拒绝",
    "Propose an amount": "提出协商金额",
    "Rule": "裁决",
    "Ship the replacement": "换新发货",
    "Refund instead (out of stock)": "改为退款（缺货）",
    "Agree to the case": "同意售后",
    "Reject the case": "拒绝售后",
    "Propose another amount": "协商其他金额",
    "Receive the return": "确认收到退货",
    "Rule on the case": "平台裁决",
    "Ship a replacement": "换新发货",
    "Refund instead": "改为退款",
    # queue
    "After-sales cases waiting": "售后队列",
    "Case": "售后单",
    # bulk
    "Bulk ship": "批量发货",
    "rows shipped": "行已发货",
    "the others were refused, each with its reason below": "其余行被拒绝，原因见下",
    "Row": "行",
    "Result": "结果",
    "Detail": "说明",
    "Back to the orders": "返回订单列表",
    "Packing slip": "发货单",
    "Back": "返回",
    "Print this page: one slip per order.": "打印本页：每个订单一张发货单。",
    "No packages yet: packages are made when the order is paid.": "暂无包裹：订单付款后生成包裹。",
    "Item": "商品",
    "every open status": "所有进行中的状态",
    "The nearest deadline first: what happens when it passes is in the last column.": "截止时间最近的在前；最后一列说明超时后会发生什么。",
    "No cases here.": "没有售后。",
    "Previous page": "上一页",
    "(both days included)": "（含首尾两天）",
    "Show": "查看",
    "Net": "净额",
    "Payments and refunds booked in these days; a refund that failed is not counted.": "这些天内入账的付款与退款；失败的退款不计入。",
    "Download the orders as CSV": "下载订单 CSV",
    "sign in help": "粘贴商家或管理员的令牌（make run 会打印演示令牌）。登录后服务器保存会话，浏览器只保存一个脚本无法读取的 Cookie。退出、{hours} 小时未使用、令牌过期或管理员结束会话时，会话即结束。",
    "Token": "令牌",
    "Your time zone": "你的时区",
    "Placed to": "下单日期至",
    "Paid to": "付款日期至",
    # what a finished action says
    "Package shipped: the buyer sees its carrier and tracking number.": "已发货：买家可看到快递公司和运单号。",
    "Refund request agreed: the money goes back and the goods are back on hand.": "已同意退款：款项原路退回，商品已回库存。",
    "Refund request refused: the buyer sees your reason.": "已拒绝退款：买家可看到拒绝原因。",
    "Order closed: its stock is free again.": "订单已关闭：库存已释放。",
    "Return received: the goods are back on hand.": "已确认收到退货：商品已回库存。",
    "Refund sent again through its channel.": "已通过原渠道重新发起退款。",
    "Agreed: refunded now if refund-only; otherwise the buyer sends the goods back.": "已同意：仅退款的售后立即退款，其余等待买家寄回商品。",
    "Rejected: the buyer sees your reason and may ask the platform to step in.": "已拒绝：买家可看到原因，并可申请平台介入。",
    "Proposal sent: the buyer accepts or declines it.": "协商方案已发出：等待买家接受或拒绝。",
    "Ruling recorded: the case follows it.": "裁决已记录：售后按裁决处理。",
    "Replacement shipped: the case ends when the buyer receives it.": "换新商品已发货：买家收货后售后完成。",
    "Refunded instead: the money goes back to the buyer.": "已改为退款：款项退回买家。",
}


EN: dict[str, str] = {  # phrases too long to be their own key
    "sign in help": (
        "Paste a merchant's or an admin's token (make run prints demo tokens). It opens a"
        " session on the server; this browser keeps only a cookie naming it, which no script"
        " can read. The session ends when you sign out, after {hours} hours unused, when the"
        " token expires, or when an admin ends your sessions."
    ),
    "bulk ship help": (
        "Download the shipping sheet of the selected orders, fill in each row's carrier code"
        " (SF, ZTO, YTO, …) and tracking number, and upload it: each row ships as one package"
        " would, and a row that cannot ship is refused alone, saying why. Uploading the same"
        " sheet again ships nothing twice."
    ),
}


def text(lang: str, phrase: str, **values: object) -> str:
    """A phrase of the templates in `lang` (English: as written), `{name}`s filled in."""
    said = ZH.get(phrase, phrase) if lang == "zh" else EN.get(phrase, phrase)
    return said.format(**values) if values else said
