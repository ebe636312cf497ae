// The call-centre agent screen. Plain JavaScript, no build step: it calls the offer API with the
// agent's key and draws what the API answers. The DOM is built with textContent only (no HTML
// from data), so nothing a customer record holds can run in the page.
"use strict";

const TEXT = {
  en: {
    title: "Agent screen", customer: "Customer", key: "Agent key", look_up: "Look up",
    segment: "Segment and strategy", behaviour: "Key behaviour", held: "Products held",
    offers: "Offers", contacts: "Contact history", hint: "Enter a customer id and your agent key.",
    tier: "Value tier", class: "Value x satisfaction", age: "Age", risk: "Risk tolerance",
    not_assessed: "not assessed",
    balance: "Balance", inflow: "Money in, last 30 days", outflow: "Money out, last 30 days",
    inflow_since: "Money in since {date}", outflow_since: "Money out since {date}",
    salary: "Salary credited in the last 45 days", large_inflow: "A single credit of ¥50,000 or more in the last 30 days",
    large_inflow_amount: "A single credit of {amount} or more in the last 30 days",
    income: "Income band", income_bands: { low: "low", lower_middle: "lower middle", middle: "middle", upper_middle: "upper middle", high: "high" },
    transactions: "Recent deposits and withdrawals",
    spend: "Card spend", hotel: "Hotel tier", stars: "stars", intents: "Recent hotline calls",
    satisfaction: "Satisfaction", satisfaction_scale: ", on a scale from -1 (unhappy) to 1 (happy)",
    no_calls: "no hotline calls yet", no_behaviour: "No deposits, card payments or hotline calls on record.", purchases: "Recent purchases", none: "none",
    relative_score: "relative score",
    legend: "What these mean",
    legend_segment: "The letter is the value x satisfaction class. High value: value tier affluent or above (assets with the bank of ¥200,000 or more). Satisfied: satisfaction 0.2 or more and no open complaint; dissatisfied: an open complaint or satisfaction below -0.2; neutral in between.",
    legend_classes: [
      "A: high value, satisfied", "B: high value, neutral", "C: high value, dissatisfied",
      "D: mass, satisfied", "E: mass, neutral", "F: mass, dissatisfied",
      "G: 4 or more purchases and complains (an open complaint or 2 or more complaints); checked first",
    ],
    legend_satisfaction: "Satisfaction: a moving average of the sentiment of the customer's hotline calls, from -1 (very unhappy) to 1 (very happy).",
    legend_risk: "Risk: the customer's tolerance is C1 conservative, C2 cautious, C3 balanced, C4 growth, C5 aggressive; products carry a risk level R1 low, R2 medium-low, R3 medium, R4 medium-high, R5 high. A customer may be offered products up to the same number (C3: up to R3).",
    legend_score: "Relative score: the ranking model's score for the product, against the best-scoring offer in this list (100). It is not the chance that the customer buys. The list order also weighs the product's value to the bank, the channel and the bank's priorities.",
    legend_money: "Money in and out: the exact sums of deposits and withdrawals over today and the 29 days before (UTC).",
    complaint: "Open complaint: resolve it before offering anything.",
    say: "Say", points: "Talking points", accepted: "Accepted", declined: "Declined", not_now: "Not now",
    reason: "Reason", recorded: "Recorded", updating: "updating the list...",
    still_listed: "Recorded. The list updates as soon as the stream has applied the answer; look the customer up again in a moment.",
    no_offers: "No offer for this customer right now.", do_first: "Do first",
    degraded: "The offer service is degraded: these are safe general offers, not this customer's own. Live customer data is unavailable right now.",
    unreachable: "The offer service cannot be reached. Check the network, then look the customer up again.",
    need_key: "Enter your agent API key (the call-centre key) to look customers up.",
    unknown: "No history for this customer yet: offers are what suits most customers.",
    model: "model", product: "Product", outcome: "Last answer", when: "When", none_yet: "No offers recorded yet.",
    mass: "mass", affluent: "affluent", high_net_worth: "high net worth", private: "private banking",
    deposit: "deposit", withdrawal: "withdrawal",
    codes: {
      counter: "counter", atm: "ATM", mobile: "mobile", transfer: "transfer",
      balance_query: "balance query", lost_card: "lost card", card_limit: "card limit", loan_inquiry: "loan inquiry",
      mortgage_inquiry: "mortgage inquiry", wealth_inquiry: "wealth inquiry", fund_inquiry: "fund inquiry",
      insurance_inquiry: "insurance inquiry", complaint: "complaint", transfer_help: "transfer help", other: "other",
      groceries: "groceries", dining: "dining", travel: "travel", hotel: "hotels", luxury: "luxury", fuel: "fuel",
      electronics: "electronics", education: "education", healthcare: "healthcare", utilities: "utilities",
      entertainment: "entertainment", online_retail: "online shopping",
    },
    outcomes: { accepted: "accepted", declined: "declined", shown: "shown", ignored: "not now" },
    reasons: {
      not_interested: "not interested", has_it_elsewhere: "has it elsewhere", too_expensive: "too expensive",
      bad_timing: "bad timing", needs_advice: "needs advice", complaint: "complaint", other: "other",
    },
  },
  zh: {
    title: "坐席工作台", customer: "客户号", key: "坐席密钥", look_up: "查询",
    segment: "客户分群与策略", behaviour: "关键行为", held: "已持有产品",
    offers: "推荐产品", contacts: "营销接触记录", hint: "请输入客户号和坐席密钥。",
    tier: "价值层级", class: "价值×满意度分群", age: "年龄", risk: "风险承受能力",
    not_assessed: "未评估",
    balance: "账户余额", inflow: "近30天流入", outflow: "近30天流出",
    inflow_since: "自{date}起流入", outflow_since: "自{date}起流出",
    salary: "近45天有代发工资", large_inflow: "近30天有单笔5万元及以上转入", transactions: "近期存取款",
    large_inflow_amount: "近30天有单笔{amount}及以上转入",
    income: "收入档次", income_bands: { low: "低", lower_middle: "中低", middle: "中等", upper_middle: "中高", high: "高" },
    spend: "刷卡消费", hotel: "酒店档次", stars: "星", intents: "近期来电意图",
    satisfaction: "满意度", satisfaction_scale: "（取值-1不满意至1满意）",
    no_calls: "暂无来电记录", no_behaviour: "暂无存取款、刷卡或来电记录。", purchases: "近期购买", none: "无",
    relative_score: "相对评分",
    legend: "说明",
    legend_segment: "字母为价值×满意度分群。高价值：价值层级为富裕及以上（在本行资产20万元及以上）。满意：满意度0.2及以上且无未结投诉；不满意：有未结投诉或满意度低于-0.2；其余为一般。",
    legend_classes: [
      "A：高价值、满意", "B：高价值、满意度一般", "C：高价值、不满意",
      "D：大众、满意", "E：大众、满意度一般", "F：大众、不满意",
      "G：购买4次及以上且常投诉（有未结投诉或投诉2次及以上），优先判定",
    ],
    legend_satisfaction: "满意度：客户来电情绪的移动平均，取值-1（非常不满意）至1（非常满意）。",
    legend_risk: "风险：客户风险承受能力为C1保守型、C2谨慎型、C3稳健型、C4积极型、C5激进型；产品风险等级为R1低风险、R2中低风险、R3中风险、R4中高风险、R5高风险。只可推荐不高于同一数字的产品（C3：最高R3）。",
    legend_score: "相对评分：模型对该产品的评分，以本列表中评分最高的推荐为100。它不是客户购买的概率。列表顺序还考虑产品对银行的价值、渠道和银行的营销重点。",
    legend_money: "流入与流出：今天及之前29天（UTC）存款与取款金额的精确合计。",
    complaint: "客户有未结投诉：先处理投诉，暂不营销。",
    say: "话术", points: "要点", accepted: "接受", declined: "拒绝", not_now: "以后再说",
    reason: "原因", recorded: "已记录", updating: "正在刷新列表……",
    still_listed: "已记录。流处理应用该结果后列表即会更新，请稍后重新查询。",
    no_offers: "该客户暂无可推荐产品。", do_first: "请先",
    degraded: "推荐服务处于降级状态：以下为稳妥的通用推荐，并非针对该客户。客户实时数据暂不可用。",
    unreachable: "无法连接推荐服务，请检查网络后重新查询。",
    need_key: "请输入坐席 API 密钥（呼叫中心渠道）后查询。",
    unknown: "该客户暂无历史数据：推荐为大多数客户适用的产品。",
    model: "模型", product: "产品", outcome: "最近结果", when: "时间", none_yet: "暂无营销记录。",
    mass: "大众", affluent: "富裕", high_net_worth: "高净值", private: "私人银行",
    deposit: "存款", withdrawal: "取款",
    codes: {
      counter: "柜面", atm: "ATM", mobile: "手机银行", transfer: "转账",
      balance_query: "余额查询", lost_card: "挂失", card_limit: "信用卡额度", loan_inquiry: "贷款咨询",
      mortgage_inquiry: "房贷咨询", wealth_inquiry: "理财咨询", fund_inquiry: "基金咨询",
      insurance_inquiry: "保险咨询", complaint: "投诉", transfer_help: "转账求助", other: "其他",
      groceries: "商超", dining: "餐饮", travel: "出行", hotel: "酒店", luxury: "奢侈品", fuel: "加油",
      electronics: "数码电器", education: "教育", healthcare: "医疗", utilities: "生活缴费",
      entertainment: "娱乐", online_retail: "网购",
    },
    outcomes: { accepted: "接受", declined: "拒绝", shown: "已展示", ignored: "以后再说" },
    reasons: {
      not_interested: "不感兴趣", has_it_elsewhere: "他行已有", too_expensive: "费用太高",
      bad_timing: "时机不对", needs_advice: "需要咨询", complaint: "投诉", other: "其他",
    },
  },
};

const ui = {
  lang: localStorage.getItem("nbo-lang") || (navigator.language.startsWith("zh") ? "zh" : "en"),
  key: "",
  customer: "",
  profile: null,
  offers: null,
  message: null, // {kind: "error"|"warn", text} shown in the banner
};

function t(name) { return TEXT[ui.lang][name] ?? TEXT.en[name] ?? name; }
function local(text) { return text ? (text[ui.lang] || text.en) : ""; }
function $(id) { return document.getElementById(id); }

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Appends the children that are there (a feature the customer lacks is passed as null).
function put(node, ...children) { node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false)); }

// An amount in minor units of the bank's base currency (the profile's `currency`): "¥1,234.50"
// for CNY; in another base currency its ISO code and its own decimals, e.g. "EUR 1,234.50",
// "JPY 1,234", "BHD 1.234".
function money(minor, whole = false) {
  const locale = ui.lang === "zh" ? "zh-CN" : "en-US";
  const currency = (ui.profile && ui.profile.currency) || { code: "CNY", minor_unit_exponent: 2 };
  const digits = whole ? 0 : currency.minor_unit_exponent;
  const major = minor / 10 ** currency.minor_unit_exponent;
  const text = (whole ? Math.trunc(major) : major).toLocaleString(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return currency.code === "CNY" ? "¥" + text : `${currency.code} ${text}`;
}

// The affluent floor (domain.catalog.VALUE_TIER_FLOORS_MINOR: 20,000,000 minor units of the base
// currency) in the legend: as written for CNY, in the base currency otherwise.
function segmentLegend() {
  const currency = ui.profile && ui.profile.currency;
  if (!currency || currency.code === "CNY") return t("legend_segment");
  return t("legend_segment").replace("¥200,000", money(20000000, true)).replace("20万元", money(20000000, true));
}

// The large-inflow flag: the fixed text for the default 50,000 CNY, else the amount in force.
function largeInflowText(b) {
  const currency = ui.profile && ui.profile.currency;
  if ((!currency || currency.code === "CNY") && b.large_inflow_min_minor === 5000000) return t("large_inflow");
  return t("large_inflow_amount").replace("{amount}", money(b.large_inflow_min_minor, true));
}

// A code from the API (channel, hotline intent, spend category) in the agent's language.
function code(value) { return t("codes")[value] || TEXT.en.codes[value] || value.replaceAll("_", " "); }

function day(iso) { return iso ? iso.slice(0, 16).replace("T", " ") : ""; }

// ---- talking to the offer API -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options,
      headers: { "X-API-Key": ui.key, "Content-Type": "application/json", ...(options.headers || {}) },
    });
  } catch (err) {
    throw new ApiError(0, t("unreachable"));
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
    throw new ApiError(response.status, detail);
  }
  return body;
}

function customerPath(suffix) {
  return `/v1/call-centre/customers/${encodeURIComponent(ui.customer)}/${suffix}`;
}

async function lookUp({ keepStatus = false } = {}) {
  ui.message = null;
  if (!ui.key) { ui.message = { kind: "warn", text: t("need_key") }; render(); return; }
  const [profile, offers] = await Promise.allSettled([api(customerPath("profile")), api(customerPath("offers"))]);
  if (offers.status === "rejected") {
    ui.profile = null; ui.offers = null;
    ui.message = { kind: "error", text: offers.reason.message };
  } else {
    ui.offers = offers.value;
    ui.profile = profile.status === "fulfilled" ? profile.value : null;
    if (profile.status === "rejected" && profile.reason.status !== 503) {
      ui.message = { kind: "error", text: profile.reason.message };
    } else if (ui.offers.degraded || !ui.profile) {
      ui.message = { kind: "warn", text: t("degraded") };
    }
  }
  if (!keepStatus) $("status").textContent = "";
  render();
}

// Records the customer's answer, then refreshes until the answer has reached the customer's
// state through the stream (a declined product leaves the list), with a deadline.
async function record(offer, outcome, reason) {
  const body = {
    decision_id: ui.offers.decision_id, customer_id: ui.customer, product_id: offer.product_id,
    channel: "call_centre", outcome,
  };
  if (outcome === "declined") body.decline_reason = reason;
  const status = $("status");
  try {
    await api("/v1/outcomes", { method: "POST", body: JSON.stringify(body) });
  } catch (err) {
    ui.message = { kind: "error", text: err.message };
    render();
    return;
  }
  const label = outcome === "declined" ? `${t("declined")} (${t("reasons")[reason]})` : TEXT[ui.lang].outcomes[outcome];
  status.textContent = `${t("recorded")}: ${local({ en: offer.name, zh: offer.name_zh })}, ${label}; ${t("updating")}`;
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    await lookUp({ keepStatus: true });
    const listed = ui.offers && ui.offers.offers.some((o) => o.product_id === offer.product_id);
    const answered = ui.profile && ui.profile.contact_history.some((c) => c.product_id === offer.product_id);
    // A decline takes the product off the list; an acceptance stays listed until the purchase
    // itself arrives from the core system, so it is done once the contact history shows it.
    if ((!listed || outcome === "accepted") && (answered || !ui.profile)) {
      $("status").textContent = `${t("recorded")}: ${local({ en: offer.name, zh: offer.name_zh })}, ${label}.`;
      return;
    }
  }
  $("status").textContent = t("still_listed");
}

// ---- drawing the screen -------------------------------------------------------------------

function render() {
  document.documentElement.lang = ui.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("lang").textContent = ui.lang === "zh" ? "English" : "中文";
  const banner = $("banner");
  banner.hidden = !ui.message;
  banner.className = ui.message ? ui.message.kind : "";
  banner.textContent = ui.message ? ui.message.text : "";
  $("screen").hidden = !ui.offers;
  $("hint").hidden = Boolean(ui.offers);
  if (!ui.offers) return;
  renderProfile(ui.profile);
  renderOffers(ui.offers);
}

function row(label, ...value) { return el("div", { class: "row" }, el("span", { class: "label", text: label }), el("span", {}, ...value)); }

function renderProfile(p) {
  const segment = $("segment"), behaviour = $("behaviour"), holdings = $("holdings"), contacts = $("contacts");
  for (const node of [segment, behaviour, holdings, contacts]) node.replaceChildren();
  $("complaint").hidden = !(p && p.behaviour.open_complaint);
  $("complaint").textContent = t("complaint");
  if (!p) return;
  const known = p.vs_segment !== null;
  put(segment,
    el("div", { class: "segment-line" },
      known ? el("span", { class: `class-badge class-${p.vs_segment}`, "data-testid": "vs-segment", text: p.vs_segment }) : null,
      el("span", { class: "segment-label", "data-testid": "segment-label", text: local(p.segment_label) }),
      p.value_tier !== null ? el("span", { class: "tier", text: `${t("tier")}: ${t(p.value_tier)}` }) : null,
      p.age !== null ? el("span", { text: `${t("age")}: ${p.age}` }) : null,
      p.known ? el("span", { "data-testid": "risk", text: `${t("risk")}: ${p.risk_tolerance_label ? local(p.risk_tolerance_label) : t("not_assessed")}` }) : null,
      p.income_band ? el("span", { "data-testid": "income-band", text: `${t("income")}: ${t("income_bands")[p.income_band] || p.income_band}` }) : null),
    (p.profile_notes || []).length
      ? el("ul", { class: "profile-notes", "data-testid": "profile-notes" }, p.profile_notes.map((n) => el("li", { "data-code": n.code, text: local(n) })))
      : null,
    p.strategy ? el("p", { class: "strategy", "data-testid": "strategy", text: local(p.strategy) }) : null,
    p.known ? null : el("p", { class: "muted", text: t("unknown") }),
    legend());

  if (!p.known) { // nothing to show but zeros and defaults, which would read as facts
    behaviour.append(el("p", { class: "muted", "data-testid": "no-behaviour", text: t("no_behaviour") }));
  } else renderBehaviour(behaviour, p);

  put(holdings, 
    p.holdings.length
      ? el("ul", { class: "held", "data-testid": "holdings" },
        p.holdings.map((h) => el("li", { text: local({ en: h.name, zh: h.name_zh }) + (h.count > 1 ? ` ×${h.count}` : "") })))
      : el("p", { class: "muted", text: t("none") }),
    p.recent_purchases.length
      ? row(t("purchases"), p.recent_purchases.slice(0, 3).map((x) => `${local({ en: x.name, zh: x.name_zh })} (${x.at.slice(0, 10)})`).join(" · "))
      : null);

  put(contacts, p.contact_history.length
    ? el("table", { class: "mini", "data-testid": "contact-history" },
      el("tr", {}, el("th", { text: t("product") }), el("th", { text: t("outcome") }), el("th", { text: t("when") })),
      p.contact_history.map((c) => el("tr", {},
        el("td", { text: c.product_id }),
        el("td", { text: (TEXT[ui.lang].outcomes[c.last_outcome] || c.last_outcome || "") +
          (c.decline_reason ? ` (${t("reasons")[c.decline_reason] || c.decline_reason})` : "") }),
        el("td", { text: day(c.at) }))))
    : el("p", { class: "muted", text: t("none_yet") }));
}

function renderBehaviour(behaviour, p) {
  const b = p.behaviour;
  const flags = [b.salary_credit ? t("salary") : null, b.large_inflow_recent ? largeInflowText(b) : null].filter(Boolean);
  const since = b.flows_complete ? null : b.flows_counted_from.slice(0, 10);
  put(behaviour,
    row(t("balance"), money(b.balance_minor)),
    el("div", { class: "row", "data-testid": "money-in" }, el("span", { class: "label", text: since ? t("inflow_since").replace("{date}", since) : t("inflow") }),
      el("span", { class: "num", text: money(b.inflow_30d_minor) })),
    el("div", { class: "row", "data-testid": "money-out" }, el("span", { class: "label", text: since ? t("outflow_since").replace("{date}", since) : t("outflow") }),
      el("span", { class: "num", text: money(b.outflow_30d_minor) })),
    flags.length ? el("div", { class: "flags" }, flags.map((f) => el("span", { class: "flag", text: f }))) : null,
    el("h3", { text: t("transactions") }),
    p.recent_transactions.length
      ? el("table", { class: "mini", "data-testid": "transactions" }, p.recent_transactions.map((x) =>
        el("tr", {}, el("td", { text: day(x.at) }), el("td", { text: t(x.kind) }),
          el("td", { class: `num ${x.kind}`, text: (x.kind === "withdrawal" ? "-" : "+") + money(x.amount_minor) }),
          el("td", { class: "muted", text: code(x.channel) }))))
      : el("p", { class: "muted", text: t("none") }),
    row(t("spend"), b.top_spend_categories.length
      ? b.top_spend_categories.map((c) => `${code(c.category)} ${money(c.amount_minor)}`).join(" · ") : t("none")),
    b.max_hotel_stars ? row(t("hotel"), `${b.max_hotel_stars} ${t("stars")}`) : null,
    row(t("intents"), b.recent_hotline_intents.length
      ? b.recent_hotline_intents.map((i) => code(i.intent)).join(" · ") : t("none")),
    el("div", { class: "row", "data-testid": "satisfaction" }, el("span", { class: "label", text: t("satisfaction") }),
      el("span", { text: b.satisfaction === null ? t("no_calls") : `${b.satisfaction.toFixed(2)}${t("satisfaction_scale")}` })));
}

// What the badge letters, the scales and the offers' scores mean, folded away until asked.
function legend() {
  return el("details", { class: "legend", "data-testid": "legend" },
    el("summary", { text: t("legend") }),
    el("p", { text: segmentLegend() }),
    el("ul", {}, t("legend_classes").map((line) => el("li", { text: line }))),
    el("p", { text: t("legend_satisfaction") }),
    el("p", { text: t("legend_risk") }),
    el("p", { text: t("legend_score") }),
    el("p", { text: t("legend_money") }));
}

function renderOffers(response) {
  $("model").textContent = `${t("model")} ${response.model_version}`;
  const action = $("service-action");
  action.hidden = !response.service_action;
  action.textContent = response.service_action ? `${t("do_first")}: ${local(response.service_action)}` : "";
  const list = $("offers");
  list.replaceChildren();
  if (!response.offers.length) list.append(el("li", { class: "muted", text: t("no_offers") }));
  const best = Math.max(0, ...response.offers.map((o) => o.propensity));
  for (const offer of response.offers) list.append(offerCard(offer, best));
}

function offerCard(offer, best) {
  const points = offer.talking_points.filter((p) => local(p) !== local(offer.pitch)); // the pitch is said already
  const reasons = el("select", { "data-testid": `reason-${offer.product_id}`, "aria-label": t("reason") },
    Object.entries(TEXT[ui.lang].reasons).map(([code, label]) => el("option", { value: code, text: label })));
  const busy = (fn) => async (event) => {
    for (const button of event.target.closest(".offer").querySelectorAll("button, select")) button.disabled = true;
    await fn();
  };
  return el("li", { class: "offer", "data-product": offer.product_id, "data-testid": `offer-${offer.product_id}` },
    el("div", { class: "offer-head" },
      el("strong", { text: local({ en: offer.name, zh: offer.name_zh }) }),
      el("span", { class: "score", "data-testid": `score-${offer.product_id}`,
        text: `${t("relative_score")} ${best > 0 ? Math.round((offer.propensity / best) * 100) : 0}` })),
    el("p", { class: "reason", text: local(offer.reason) }),
    el("p", { class: "pitch" }, el("span", { class: "label", text: `${t("say")}: ` }), local(offer.pitch)),
    points.length ? el("ul", { class: "points" }, points.map((p) => el("li", { text: local(p) }))) : null,
    el("div", { class: "actions" },
      el("button", { class: "accept", "data-testid": `accept-${offer.product_id}`, text: t("accepted"),
        onclick: busy(() => record(offer, "accepted")) }),
      el("span", { class: "decline" },
        reasons,
        el("button", { class: "declined", "data-testid": `decline-${offer.product_id}`, text: t("declined"),
          onclick: busy(() => record(offer, "declined", reasons.value)) })),
      el("button", { class: "later", "data-testid": `later-${offer.product_id}`, text: t("not_now"),
        onclick: busy(() => record(offer, "declined", "bad_timing")) })));
}

// ---- start-up -----------------------------------------------------------------------------

function start() {
  const params = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    sessionStorage.setItem("nbo-agent-key", fragment.get("key"));
    history.replaceState(null, "", location.pathname + location.search); // the key leaves the address bar
  }
  ui.key = sessionStorage.getItem("nbo-agent-key") || "";
  $("key").value = ui.key;
  $("customer").value = params.get("customer") || "";
  $("lookup").addEventListener("submit", (event) => {
    event.preventDefault();
    ui.key = $("key").value.trim();
    sessionStorage.setItem("nbo-agent-key", ui.key);
    ui.customer = $("customer").value.trim();
    const url = new URL(location.href);
    url.searchParams.set("customer", ui.customer);
    history.replaceState(null, "", url);
    lookUp();
  });
  $("lang").addEventListener("click", () => {
    ui.lang = ui.lang === "zh" ? "en" : "zh";
    localStorage.setItem("nbo-lang", ui.lang);
    render();
  });
  render();
  if ($("customer").value && ui.key) { ui.customer = $("customer").value.trim(); lookUp(); }
}

start();
