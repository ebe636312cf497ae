// The marketing report. Plain JavaScript, no build step, no library: it calls
// GET /v1/reports/effectiveness with the marketing key and draws the answer as tables and SVG
// charts. The DOM is built with textContent only (no HTML from data).
"use strict";

const TEXT = {
  en: {
    title: "Offer effectiveness", from: "From", to: "To", key: "Marketing key", show: "Show",
    hint: "Choose the days and enter your marketing key.",
    need_key: "Enter your marketing API key (a key of the marketing scope) to read the report.",
    unreachable: "The report service cannot be reached. Check the network, then press Show again.",
    rate_chart: "Conversion rate by product: treatment and control", lift_chart: "Lift by product, with its 95 % interval",
    products: "Products", declines: "Top decline reasons per product", revenue: "Revenue proxy by product",
    by_channel: "By channel", by_segment: "By segment", by_model: "By model version",
    legend: "How to read this report",
    shows: "Offers shown", accepted: "Accepted", conversions: "Conversions", revenue_proxy: "Revenue proxy",
    lift: "Lift in conversion rate", acceptance_lift: "Lift in acceptance rate",
    treatment: "treatment", control: "control", rate: "rate", interval: "95 % interval",
    product: "Product", group: "", shows_tc: "Shows (treatment / control)", accept_rate: "Acceptance rate",
    conv_t: "Conversion, treatment", conv_c: "Conversion, control", lift_col: "Lift", verdict: "Verdict",
    ignored: "Ignored", top_reasons: "Top decline reasons", th_shows: "Shows", th_conv_t: "Conv. T", th_conv_c: "Conv. C", no_shows: "No offer was shown in these days.",
    no_lift: "no lift yet", of_declines: "of declines", no_declines: "no declines", other_reasons: "other reasons",
    range: "{from} to {to} (UTC days the offers were shown)",
    accepted_at_touchpoint: "{n} accepted at the touchpoint",
    significant_better: "significant: treatment {what} {pct} better than control (95 % interval {low} to {high})",
    significant_worse: "significant: treatment {what} {pct} worse than control (95 % interval {low} to {high})",
    converts: "converts", is_accepted: "is accepted",
    not_yet_more: "not yet: need ~{n} more shows",
    reasons_verdict: {
      no_treatment_shows: "not yet: no treatment shows in this range",
      no_control_shows: "not yet: no control shows in this range",
      same_rate: "not yet: both arms at the same rate so far",
      none_either: "not yet: no {noun} in either arm yet",
      no_control_successes: "not yet: no {noun} in control yet; the interval needs one in each arm",
      no_treatment_successes: "not yet: no {noun} in treatment yet; the interval needs one in each arm",
    },
    noun_conversion: "conversion", noun_acceptance: "acceptance",
    legend_text: [
      "Treatment customers see the engine's ranked offers; control customers (a small random share, the same all month) see offers drawn at random from what the bank's rules allow. The difference between the two is what the ranking adds.",
      "Conversion rate: purchases attributed to the offers (the last offer of the product shown within the attribution window before the purchase) per offer shown. Counts are filed under the day the offer was shown, so the last days of a range still grow.",
      "Lift = (treatment rate − control rate) / control rate, with a 95 % interval (delta method). Significant: the interval excludes 0. Not yet: the shows still needed for an 80 % chance of a significant answer if the rates stay as they are.",
      "Revenue proxy: conversions × the product's annual value to the bank (catalog), in the bank's base currency. It is not booked revenue.",
    ],
    channels: { teller: "teller", call_centre: "call centre", mobile: "mobile" },
    reasons: {
      not_interested: "not interested", has_it_elsewhere: "has it elsewhere", too_expensive: "too expensive",
      bad_timing: "bad timing", needs_advice: "needs advice", complaint: "complaint", other: "other",
    },
  },
  zh: {
    title: "营销效果报告", from: "开始日期", to: "结束日期", key: "营销密钥", show: "查看",
    hint: "请选择日期并输入营销密钥。",
    need_key: "请输入营销 API 密钥（营销权限）后查看报告。",
    unreachable: "无法连接报告服务，请检查网络后重新查看。",
    rate_chart: "各产品转化率：实验组与对照组", lift_chart: "各产品提升率及95%置信区间",
    products: "产品", declines: "各产品主要拒绝原因", revenue: "各产品收入估算",
    by_channel: "按渠道", by_segment: "按客户分群", by_model: "按模型版本",
    legend: "报告说明",
    shows: "展示次数", accepted: "接受", conversions: "转化", revenue_proxy: "收入估算",
    lift: "转化率提升", acceptance_lift: "接受率提升",
    treatment: "实验组", control: "对照组", rate: "比率", interval: "95%置信区间",
    product: "产品", group: "", shows_tc: "展示（实验组 / 对照组）", accept_rate: "接受率",
    conv_t: "实验组转化率", conv_c: "对照组转化率", lift_col: "提升", verdict: "结论",
    ignored: "未响应", top_reasons: "主要拒绝原因", th_shows: "展示", th_conv_t: "实验组转化", th_conv_c: "对照组转化", no_shows: "所选日期内没有展示任何推荐。",
    no_lift: "暂无提升数据", of_declines: "占拒绝", no_declines: "无拒绝", other_reasons: "其他原因",
    range: "{from} 至 {to}（推荐展示日，UTC）",
    accepted_at_touchpoint: "其中{n}次在触点接受",
    significant_better: "显著：实验组{what}比对照组高{pct}（95%置信区间 {low} 至 {high}）",
    significant_worse: "显著：实验组{what}比对照组低{pct}（95%置信区间 {low} 至 {high}）",
    converts: "转化率", is_accepted: "接受率",
    not_yet_more: "尚无定论：还需约{n}次展示",
    reasons_verdict: {
      no_treatment_shows: "尚无定论：所选日期内实验组没有展示",
      no_control_shows: "尚无定论：所选日期内对照组没有展示",
      same_rate: "尚无定论：目前两组比率相同",
      none_either: "尚无定论：两组均尚无{noun}",
      no_control_successes: "尚无定论：对照组尚无{noun}，置信区间需两组各至少一次",
      no_treatment_successes: "尚无定论：实验组尚无{noun}，置信区间需两组各至少一次",
    },
    noun_conversion: "转化", noun_acceptance: "接受",
    legend_text: [
      "实验组客户看到引擎排序后的推荐；对照组客户（随机抽取的一小部分，整月不变）看到在银行规则允许范围内随机抽取的推荐。两组之差即排序带来的效果。",
      "转化率：归因于推荐的购买（购买前归因窗口内最后一次展示该产品的推荐）除以展示次数。各项计数记在推荐展示当天，因此所选日期的最后几天仍会增长。",
      "提升率 =（实验组比率 − 对照组比率）/ 对照组比率，附95%置信区间（delta方法）。显著：置信区间不含0。尚无定论：若比率保持不变，要有80%的把握得出显著结论还需的展示次数。",
      "收入估算：转化次数 × 产品对银行的年价值（产品目录），以本行本位币计。并非已入账收入。",
    ],
    channels: { teller: "柜面", call_centre: "呼叫中心", mobile: "手机银行" },
    reasons: {
      not_interested: "不感兴趣", has_it_elsewhere: "他行已有", too_expensive: "费用太高",
      bad_timing: "时机不对", needs_advice: "需要咨询", complaint: "投诉", other: "其他",
    },
  },
};

const ui = {
  lang: localStorage.getItem("nbo-lang") || (navigator.language.startsWith("zh") ? "zh" : "en"),
  key: "",
  report: null,
  message: null, // {kind: "error"|"warn", text}
};

function t(name) { return TEXT[ui.lang][name] ?? TEXT.en[name] ?? name; }
function fill(text, values) { return text.replace(/\{(\w+)\}/g, (_, name) => values[name] ?? ""); }
function $(id) { return document.getElementById(id); }
function locale() { return ui.lang === "zh" ? "zh-CN" : "en-US"; }
function count(n) { return n.toLocaleString(locale()); }

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A rate as a percentage: two decimals below 10 %, one above; "–" without shows.
function pct(rate) {
  if (rate === null || rate === undefined) return "–";
  return (rate * 100).toFixed(rate < 0.1 ? 2 : 1) + "%";
}
function signed(lift) {
  if (lift === null || lift === undefined) return "–";
  const value = Math.round(lift * 100);
  return (value > 0 ? "+" : value < 0 ? "−" : "") + Math.abs(value) + "%";
}

// Minor units of the report's base currency: "¥1,234.50" for CNY, "EUR 1,234.50" otherwise.
function money(minor) {
  const currency = (ui.report && ui.report.currency) || { code: "CNY", minor_unit_exponent: 2 };
  const major = minor / 10 ** currency.minor_unit_exponent;
  const text = major.toLocaleString(locale(), { maximumFractionDigits: 0 });
  return currency.code === "CNY" ? "¥" + text : `${currency.code} ${text}`;
}

function productName(group) { return group.label ? (group.label[ui.lang] || group.label.en) : group.key; }
// A chart's row label: the product's name, cut to fit the label column.
function shortName(group) {
  const name = productName(group);
  const room = ui.lang === "zh" ? 14 : 28;
  return name.length > room ? name.slice(0, room - 1) + "…" : name;
}
function reasonName(code) { return t("reasons")[code] || code.replaceAll("_", " "); }
function channelName(code) { return t("channels")[code] || code.replaceAll("_", " "); }

// The verdict of a lift in the reader's language: the API's own sentence in English, the same
// facts in Chinese.
function verdict(lift) {
  if (ui.lang === "en") return lift.text;
  const noun = t(lift.measure === "conversion" ? "noun_conversion" : "noun_acceptance");
  const words = t("reasons_verdict");
  if (lift.verdict === "significant") {
    const [low, high] = lift.interval;
    return fill(t(lift.lift > 0 ? "significant_better" : "significant_worse"), {
      what: t(lift.measure === "conversion" ? "converts" : "is_accepted"),
      pct: Math.round(Math.abs(lift.lift) * 100) + "%", low: signed(low), high: signed(high),
    });
  }
  if (lift.more_shows_rounded !== null) return fill(t("not_yet_more"), { n: count(lift.more_shows_rounded) });
  if (lift.reason === "no_difference") return lift.treatment_rate ? words.same_rate : fill(words.none_either, { noun });
  return fill(words[lift.reason] || words.none_either, { noun });
}
function verdictClass(lift) {
  return lift.verdict === "significant" ? (lift.lift > 0 ? "significant" : "significant worse") : "not_yet";
}

// ---- talking to the API -------------------------------------------------------------------

async function load() {
  ui.message = null;
  if (!ui.key) { ui.message = { kind: "warn", text: t("need_key") }; render(); return; }
  const query = new URLSearchParams({ from: $("from").value, to: $("to").value });
  let response;
  try {
    response = await fetch(`/v1/reports/effectiveness?${query}`, { headers: { "X-API-Key": ui.key } });
  } catch (err) {
    ui.report = null; ui.message = { kind: "error", text: t("unreachable") }; render(); return;
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    ui.report = null;
    ui.message = { kind: "error", text: body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}` };
  } else {
    ui.report = body;
  }
  render();
}

// ---- drawing ------------------------------------------------------------------------------

function render() {
  document.documentElement.lang = ui.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("lang").textContent = ui.lang === "zh" ? "English" : "中文";
  const banner = $("banner");
  banner.hidden = !ui.message;
  banner.className = ui.message ? ui.message.kind : "";
  banner.textContent = ui.message ? ui.message.text : "";
  $("report").hidden = !ui.report;
  $("hint").hidden = Boolean(ui.report);
  if (!ui.report) return;
  const r = ui.report;
  const products = r.by.product;
  renderSummary(r);
  $("rate-chart").replaceChildren(rateChart(products.slice(0, 12)));
  $("lift-chart").replaceChildren(liftChart(products.slice(0, 12)));
  $("products").replaceChildren(productTable(products));
  $("declines").replaceChildren(declineChart(products.filter((g) => g.total.declines > 0).slice(0, 12)));
  $("revenue-chart").replaceChildren(revenueChart(products.filter((g) => g.total.revenue_minor > 0).slice(0, 12)));
  $("by-channel").replaceChildren(groupTable(r.by.channel, channelName));
  $("by-segment").replaceChildren(groupTable(r.by.segment, (k) => k));
  $("by-model").replaceChildren(groupTable(r.by.model_version, (k) => k));
  $("legend").replaceChildren(...t("legend_text").map((line) => el("p", { text: line })));
}

function figure(label, value, sub, testid) {
  return el("div", { class: "card", "data-testid": testid },
    el("div", { class: "figure-label", text: label }),
    el("div", { class: "figure", text: value }),
    sub ? el("div", { class: "sub", text: sub }) : null);
}

function renderSummary(r) {
  const total = r.overall.total, lift = r.overall.lift;
  const summary = $("summary");
  if (!total.shows) {
    summary.replaceChildren(el("div", { class: "card muted", "data-testid": "empty", text: t("no_shows") }));
    return;
  }
  const range = fill(t("range"), { from: r.from, to: r.to });
  summary.replaceChildren(
    figure(t("shows"), count(total.shows), range, "shows"),
    figure(t("accepted"), count(total.accepted), `${t("rate")} ${pct(total.acceptance_rate)}`, "accepted"),
    figure(t("conversions"), count(total.conversions),
      `${t("rate")} ${pct(total.conversion_rate)} · ${fill(t("accepted_at_touchpoint"), { n: count(total.conversions_accepted) })}`,
      "conversions"),
    figure(t("revenue_proxy"), money(total.revenue_minor), r.currency.code, "revenue"),
    el("div", { class: "card", "data-testid": "lift" },
      el("div", { class: "figure-label", text: t("lift") }),
      el("div", { class: "figure", text: lift.lift === null ? t("no_lift") : signed(lift.lift) }),
      el("div", { class: "sub", text: `${t("treatment")} ${pct(lift.treatment_rate)} · ${t("control")} ${pct(lift.control_rate)}` +
        (lift.interval ? ` · ${t("interval")} ${signed(lift.interval[0])} … ${signed(lift.interval[1])}` : "") }),
      el("div", { class: `verdict ${verdictClass(lift)}`, "data-testid": "verdict", text: verdict(lift) }),
      el("div", { class: "sub", "data-testid": "acceptance-verdict",
        text: `${t("acceptance_lift")}: ${signed(r.overall.acceptance_lift.lift)} · ${verdict(r.overall.acceptance_lift)}` })));
}

// Horizontal bars: each product's conversion rate in treatment and control, with the 95 % Wilson
// interval of each as a whisker.
function rateChart(groups) {
  if (!groups.length) return el("p", { class: "muted", text: t("no_shows") });
  const left = 200, width = 600, plot = width - left - 60, row = 30;
  const height = groups.length * row + 24;
  const arms = (g) => [["treatment", g.arms.treatment], ["control", g.arms.control]];
  const top = Math.max(1e-6, ...groups.flatMap((g) => arms(g).map(([, c]) => (c && c.conversion_interval ? c.conversion_interval[1] : 0))));
  const x = (v) => left + (v / top) * plot;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": t("rate_chart") });
  groups.forEach((g, i) => {
    const y = i * row + 4;
    chart.append(svg("text", { x: left - 6, y: y + 14, "text-anchor": "end", class: "label" }, shortName(g)));
    arms(g).forEach(([arm, c], j) => {
      const by = y + j * 11;
      if (!c || !c.shows) return;
      chart.append(svg("rect", { x: left, y: by, width: Math.max(0.5, x(c.conversion_rate) - left), height: 9, class: arm }));
      const [low, high] = c.conversion_interval;
      chart.append(svg("line", { x1: x(low), x2: x(high), y1: by + 4.5, y2: by + 4.5, class: "whisker" }));
      chart.append(svg("text", { x: x(high) + 4, y: by + 8, class: "value" }, pct(c.conversion_rate)));
    });
  });
  chart.append(svg("line", { x1: left, x2: left, y1: 0, y2: height - 20, class: "axis" }));
  const keys = el("div", { class: "keys" },
    el("span", {}, el("span", { class: "swatch treatment" }), t("treatment")),
    el("span", {}, el("span", { class: "swatch control" }), t("control")));
  return el("div", {}, keys, chart);
}

// A forest plot: each product's lift as a dot (filled when significant) and its interval as a line.
function liftChart(groups) {
  const shown = groups.filter((g) => g.lift.lift !== null);
  if (!shown.length) return el("p", { class: "muted", text: t("no_lift") });
  const left = 200, width = 600, plot = width - left - 50, row = 26;
  const height = shown.length * row + 30;
  const values = shown.flatMap((g) => (g.lift.interval ? g.lift.interval : [g.lift.lift]));
  const lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const x = (v) => left + ((v - lo) / span) * plot;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": t("lift_chart") });
  chart.append(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: height - 22, class: "zero" }));
  chart.append(svg("text", { x: x(0), y: height - 8, "text-anchor": "middle", class: "value" }, "0"));
  // the ends of the axis, unless they would print over the 0
  if (x(0) - left > 60) chart.append(svg("text", { x: left, y: height - 8, "text-anchor": "start", class: "value" }, signed(lo)));
  if (left + plot - x(0) > 60) chart.append(svg("text", { x: left + plot, y: height - 8, "text-anchor": "end", class: "value" }, signed(hi)));
  shown.forEach((g, i) => {
    const y = i * row + 12;
    const kind = g.lift.verdict === "significant" ? (g.lift.lift > 0 ? "significant" : "worse") : "not_yet";
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "label" }, shortName(g)));
    if (g.lift.interval) {
      chart.append(svg("line", { x1: x(g.lift.interval[0]), x2: x(g.lift.interval[1]), y1: y, y2: y, class: "whisker" }));
    }
    chart.append(svg("circle", { cx: x(g.lift.lift), cy: y, r: 4.5, class: `dot-${kind}` }));
    chart.append(svg("text", { x: left + plot + 6, y: y + 4, class: "value" }, signed(g.lift.lift)));
  });
  return chart;
}

// Each product's declines as one stacked bar: its three most frequent reasons, then the rest.
function declineChart(groups) {
  if (!groups.length) return el("p", { class: "muted", text: t("no_declines") });
  const left = 200, width = 600, plot = width - left - 10, row = 34;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${groups.length * row + 4}`, role: "img", "aria-label": t("declines") });
  const used = new Set();
  groups.forEach((g, i) => {
    const y = i * row + 4;
    chart.append(svg("text", { x: left - 6, y: y + 12, "text-anchor": "end", class: "label" }, shortName(g)));
    let at = left;
    const top = g.top_declines;
    const rest = g.total.declines - top.reduce((sum, d) => sum + d.count, 0);
    [...top.map((d, j) => [d, `reason-${j}`]), ...(rest > 0 ? [[{ reason: null, count: rest, share: rest / g.total.declines }, "reason-rest"]] : [])]
      .forEach(([d, cls]) => {
        const w = d.share * plot;
        chart.append(svg("rect", { x: at, y, width: Math.max(0.5, w), height: 14, class: cls }));
        at += w;
      });
    chart.append(svg("text", { x: left, y: y + 27, class: "value" },
      top.map((d) => `${reasonName(d.reason)} ${Math.round(d.share * 100)}%`).join(" · ") + ` (${count(g.total.declines)})`));
    top.forEach((d) => used.add(d.reason));
  });
  const keys = el("div", { class: "keys" },
    ["reason-0", "reason-1", "reason-2"].map((cls, j) => el("span", {}, el("span", { class: `swatch ${cls}` }), `#${j + 1}`)),
    el("span", {}, el("span", { class: "swatch reason-rest" }), t("other_reasons")));
  return el("div", {}, keys, chart);
}

function revenueChart(groups) {
  if (!groups.length) return el("p", { class: "muted", text: "–" });
  const sorted = [...groups].sort((a, b) => b.total.revenue_minor - a.total.revenue_minor);
  const left = 200, width = 600, plot = width - left - 110, row = 22;
  const topValue = sorted[0].total.revenue_minor;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${sorted.length * row + 4}`, role: "img", "aria-label": t("revenue") });
  sorted.forEach((g, i) => {
    const y = i * row + 4;
    const w = (g.total.revenue_minor / topValue) * plot;
    chart.append(svg("text", { x: left - 6, y: y + 12, "text-anchor": "end", class: "label" }, shortName(g)));
    chart.append(svg("rect", { x: left, y, width: Math.max(0.5, w), height: 14, class: "revenue" }));
    chart.append(svg("text", { x: left + w + 4, y: y + 12, class: "value" }, money(g.total.revenue_minor)));
  });
  return chart;
}

function productTable(groups) {
  if (!groups.length) return el("p", { class: "muted", text: t("no_shows") });
  return el("table", { class: "data", "data-testid": "products" },
    el("tr", {}, el("th", { text: t("product") }), el("th", { class: "num", text: t("shows_tc") }),
      el("th", { class: "num", text: t("accept_rate") }), el("th", { class: "num", text: t("conv_t") }),
      el("th", { class: "num", text: t("conv_c") }), el("th", { class: "num", text: t("lift_col") }),
      el("th", { text: t("verdict") }), el("th", { text: t("top_reasons") }), el("th", { class: "num", text: t("revenue_proxy") })),
    groups.map((g) => el("tr", { "data-testid": "product-row", "data-product": g.key },
      el("td", { class: "name", text: productName(g) }),
      el("td", { class: "num", text: `${count(g.arms.treatment ? g.arms.treatment.shows : 0)} / ${count(g.arms.control ? g.arms.control.shows : 0)}` }),
      el("td", { class: "num", text: pct(g.total.acceptance_rate) }),
      el("td", { class: "num", text: pct(g.lift.treatment_rate) }),
      el("td", { class: "num", text: pct(g.lift.control_rate) }),
      el("td", { class: "num", text: signed(g.lift.lift) + (g.lift.interval ? ` [${signed(g.lift.interval[0])}, ${signed(g.lift.interval[1])}]` : "") }),
      el("td", { class: `verdict-cell ${verdictClass(g.lift)}`, "data-testid": "product-verdict", text: verdict(g.lift) }),
      el("td", { class: "reasons", text: g.top_declines.length ? g.top_declines.map((d) => `${reasonName(d.reason)} ${d.count}`).join(" · ") : "–" }),
      el("td", { class: "num", text: money(g.total.revenue_minor) }))));
}

function groupTable(groups, name) {
  if (!groups.length) return el("p", { class: "muted", text: "–" });
  return el("table", { class: "data" },
    el("tr", {}, el("th", { text: "" }), el("th", { class: "num", text: t("th_shows") }),
      el("th", { class: "num", text: t("th_conv_t") }), el("th", { class: "num", text: t("th_conv_c") }),
      el("th", { class: "num", text: t("lift_col") })),
    groups.map((g) => el("tr", { "data-key": g.key },
      el("td", { text: name(g.key) }), el("td", { class: "num", text: count(g.total.shows) }),
      el("td", { class: "num", text: pct(g.lift.treatment_rate) }), el("td", { class: "num", text: pct(g.lift.control_rate) }),
      el("td", { class: `num verdict-cell ${verdictClass(g.lift)}`, title: verdict(g.lift), text: signed(g.lift.lift) }))));
}

// ---- start-up -----------------------------------------------------------------------------

function isoDay(d) { return d.toISOString().slice(0, 10); }

function start() {
  const params = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    sessionStorage.setItem("nbo-marketing-key", fragment.get("key"));
    history.replaceState(null, "", location.pathname + location.search); // the key leaves the address bar
  }
  ui.key = sessionStorage.getItem("nbo-marketing-key") || "";
  $("key").value = ui.key;
  const today = new Date();
  $("to").value = params.get("to") || isoDay(today);
  $("from").value = params.get("from") || isoDay(new Date(today.getTime() - 29 * 86400000));
  $("range").addEventListener("submit", (event) => {
    event.preventDefault();
    ui.key = $("key").value.trim();
    sessionStorage.setItem("nbo-marketing-key", ui.key);
    const url = new URL(location.href);
    url.searchParams.set("from", $("from").value);
    url.searchParams.set("to", $("to").value);
    history.replaceState(null, "", url);
    load();
  });
  $("lang").addEventListener("click", () => {
    ui.lang = ui.lang === "zh" ? "en" : "zh";
    localStorage.setItem("nbo-lang", ui.lang);
    render();
  });
  render();
  if (ui.key) load();
}

start();
