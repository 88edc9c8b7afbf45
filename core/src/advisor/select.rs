//! Greedy index selection over the whole workload. Each round plans the affected queries with
//! the indexes chosen so far plus one candidate (or with the candidate in place of a chosen
//! index whose keys it extends), takes the move with the largest net benefit
//! (Σ weight × cost saved − write cost) that fits the budget, and re-plans only the
//! candidates that share queries with it, so an index the pick makes useless drops out.
//! The evidence for the final set is then measured afresh, one index at a time.
//! Pure: planning is the caller's `cost_with` closure.

use super::progress::Stage;

/// What selection needs to know of one candidate.
#[derive(Clone, Debug)]
pub struct CandidateCost {
    pub size_bytes: f64,
    /// Index maintenance over the workload's period, in planner cost units.
    pub write_cost: f64,
    /// The workload queries that read the candidate's table.
    pub queries: Vec<usize>,
    /// Candidates whose job this one also does (their keys lead its keys).
    pub supersedes: Vec<usize>,
    /// Candidates on the same table with the same keys (and predicate), another INCLUDE list:
    /// at most one of them is chosen (a covering merge of them replaces the ones it covers).
    pub same_key: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub budget_bytes: Option<f64>,
    pub max_indexes: Option<usize>,
    /// A query counts as helped only when its cost drops by at least this share.
    pub min_improvement: f64,
    /// An index is chosen only when it lowers the remaining workload cost by at least this
    /// share: past that point each further index buys little and the list grows long.
    pub min_workload_gain: f64,
}

/// One chosen index and its evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Pick {
    pub candidate: usize,
    /// Weighted workload cost before and after this index (after the earlier picks).
    pub workload_before: f64,
    pub workload_after: f64,
    /// (query, cost before, cost after) for each query it helps.
    pub helped: Vec<(usize, f64, f64)>,
}

/// A possible next step: add `candidate`, possibly in place of the chosen ones it `replaces`.
struct Move {
    candidate: usize,
    replaces: Vec<usize>,
    net: f64,
    added_bytes: f64,
    costs: Vec<(usize, f64)>,
}

/// A move open in a round: add `candidate` in place of the chosen ones it `replaces`.
struct Open {
    candidate: usize,
    replaces: Vec<usize>,
    added_bytes: f64,
}

/// A candidate's move as last evaluated.
#[derive(Clone)]
struct Evaluation {
    /// The chosen indexes it replaced.
    replaces: Vec<usize>,
    /// (query, cost) with it.
    costs: Vec<(usize, f64)>,
    /// False once a later pick touched one of its queries: `costs` are out of date.
    fresh: bool,
}

/// A move whose bound is under this share of the round's best score so far is not planned
/// that round: below the 2 % near-tie window of `greedy`, with room to spare.
const PRUNE: f64 = 0.95;

/// Which move a greedy round prefers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rank {
    /// The largest net benefit.
    Benefit,
    /// The largest net benefit per byte added.
    Density,
}

/// One run of greedy rounds: how it ranks moves, and which of the runs it is.
#[derive(Clone, Copy, Debug)]
struct Pass<'a> {
    rank: Rank,
    number: usize,
    of: usize,
    /// Weigh moves lazily, bounded by these floor costs (see `greedy`); eagerly without.
    floors: Option<&'a [f64]>,
}

/// Smallest size a move counts with when ranked by density (one btree page).
const PAGE_BYTES: f64 = 8192.0;

/// Chooses indexes. `weights[q]`/`base_costs[q]` describe query q without any candidate;
/// `cost_with(indexes, q)` plans q with those candidate indexes (None if planning failed).
pub fn select(
    weights: &[f64],
    base_costs: &[f64],
    candidates: &[CandidateCost],
    limits: &Limits,
    cost_with: impl FnMut(&[usize], usize) -> Option<f64>,
) -> Vec<Pick> {
    let floors = vec![0.0; base_costs.len()];
    select_reporting(weights, base_costs, &floors, candidates, limits, cost_with, &mut |_| {})
}

/// `select`, telling `progress` where it stands: each greedy round as it starts and after
/// each candidate weighed (`Stage::Choosing`), then each chosen index measured
/// (`Stage::Measuring`). `floor_costs[q]`: no set of candidates makes q cheaper (its cost
/// with every candidate offered at once; 0 when unknown), what bounds a move not planned yet.
pub fn select_reporting(
    weights: &[f64],
    base_costs: &[f64],
    floor_costs: &[f64],
    candidates: &[CandidateCost],
    limits: &Limits,
    cost_with: impl FnMut(&[usize], usize) -> Option<f64>,
    progress: &mut dyn FnMut(Stage),
) -> Vec<Pick> {
    choose(weights, base_costs, Some(floor_costs), candidates, limits, cost_with, progress)
}

/// `select_reporting` with eager greedy rounds: every open move whose queries a pick touched
/// is planned again in the next round (how selection ran before its rounds were lazy); the
/// reference that lazy rounds are checked against.
pub fn select_eagerly(
    weights: &[f64],
    base_costs: &[f64],
    candidates: &[CandidateCost],
    limits: &Limits,
    cost_with: impl FnMut(&[usize], usize) -> Option<f64>,
    progress: &mut dyn FnMut(Stage),
) -> Vec<Pick> {
    choose(weights, base_costs, None, candidates, limits, cost_with, progress)
}

/// `select_reporting`: lazy greedy rounds with floor costs, eager ones without.
fn choose(
    weights: &[f64],
    base_costs: &[f64],
    floors: Option<&[f64]>,
    candidates: &[CandidateCost],
    limits: &Limits,
    mut cost_with: impl FnMut(&[usize], usize) -> Option<f64>,
    progress: &mut dyn FnMut(Stage),
) -> Vec<Pick> {
    let helps = |before: f64, after: f64| {
        before > 0.0 && (before - after) / before >= limits.min_improvement
    };
    let picked = if limits.budget_bytes.is_none() {
        // Most benefit per byte first, so the list's curve (bytes against workload cost) bends
        // once and is cut at its knee below.
        let pass = Pass { rank: Rank::Density, number: 1, of: 1, floors };
        greedy(weights, base_costs, candidates, limits, pass, &mut cost_with, progress).0
    } else {
        // Under a storage budget (a knapsack) neither the largest benefit first nor the most
        // benefit per byte first always wins: both are tried, the cheaper workload is kept.
        let pass = Pass { rank: Rank::Benefit, number: 1, of: 2, floors };
        let (by_benefit, benefit_cost) =
            greedy(weights, base_costs, candidates, limits, pass, &mut cost_with, progress);
        let pass = Pass { rank: Rank::Density, number: 2, of: 2, floors };
        let (by_density, density_cost) =
            greedy(weights, base_costs, candidates, limits, pass, &mut cost_with, progress);
        if density_cost < benefit_cost {
            by_density
        } else {
            by_benefit
        }
    };
    let picks = evidence(weights, base_costs, candidates, &picked, helps, cost_with, progress);
    if limits.budget_bytes.is_some() {
        return picks;
    }
    let keep = knee(&curve(&picks, candidates));
    picks.into_iter().take(keep).collect()
}

/// Per prefix of the picks (the empty one first): the bytes of its indexes and the weighted
/// workload cost with them.
pub fn curve(picks: &[Pick], candidates: &[CandidateCost]) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(picks.len() + 1);
    if let Some(first) = picks.first() {
        points.push((0.0, first.workload_before));
    }
    let mut bytes = 0.0;
    for pick in picks {
        bytes += candidates[pick.candidate].size_bytes;
        points.push((bytes, pick.workload_after));
    }
    points
}

/// How many picks to keep: the knee of the curve, the point farthest above the chord from the
/// empty list to the whole list, both axes scaled to [0, 1]: bytes spent, and the workload
/// cost saved on a log scale (each index counted by the share of the remaining cost it saves,
/// so one index that removes 98 % of a huge estimated cost does not flatten the rest). Picks
/// come most benefit per byte first, so the curve bends once and the knee is where the next
/// index buys less per byte than the list does on average. A list of one or two, or a
/// straight curve, is kept whole.
pub fn knee(points: &[(f64, f64)]) -> usize {
    let picks = points.len().saturating_sub(1);
    if picks <= 2 {
        return picks;
    }
    let log = |cost: f64| cost.max(1e-9).ln();
    let (bytes, start, end) = (points[picks].0, log(points[0].1), log(points[picks].1));
    let saved = start - end;
    if bytes <= 0.0 || saved <= 0.0 {
        return picks;
    }
    // Above the chord by less than this share of the axes counts as on it.
    const FLAT: f64 = 0.02;
    let mut best = (picks, FLAT);
    for (i, (b, cost)) in points.iter().enumerate().take(picks).skip(1) {
        let distance = (start - log(*cost)) / saved - b / bytes;
        if distance > best.1 {
            best = (i, distance);
        }
    }
    best.0
}

/// Greedy rounds ranked by `pass.rank`: the indexes chosen, and the weighted workload cost
/// plus their write cost at the end.
///
/// Lazy (with floor costs): a move is planned only while an upper bound on its score could
/// still win the round (`PRUNE`) and clear `least_net`: what it would save if each of its
/// queries fell to its floor; its queries are planned the largest such saving first, and
/// planning stops once what they save plus what the rest could save cannot win. A move
/// planned since its queries last changed is not planned again.
fn greedy(
    weights: &[f64],
    base_costs: &[f64],
    candidates: &[CandidateCost],
    limits: &Limits,
    pass: Pass,
    cost_with: &mut impl FnMut(&[usize], usize) -> Option<f64>,
    progress: &mut dyn FnMut(Stage),
) -> (Vec<usize>, f64) {
    let (rank, lazy) = (pass.rank, pass.floors.is_some());
    let floors = pass.floors.unwrap_or(&[]);
    let helps = |before: f64, after: f64| {
        before > 0.0 && (before - after) / before >= limits.min_improvement
    };
    let score = |net: f64, bytes: f64| match rank {
        Rank::Benefit => net,
        Rank::Density => net / bytes.max(PAGE_BYTES),
    };
    let mut current = base_costs.to_vec();
    let mut picked: Vec<usize> = Vec::new();
    let mut used_bytes = 0.0;
    // Per candidate: its move as last evaluated.
    let mut evaluated: Vec<Option<Evaluation>> = vec![None; candidates.len()];
    // A candidate that helps nothing when added cannot start helping once more indexes exist
    // (their benefits overlap, they do not add up), so it is not planned again.
    let mut useless = vec![false; candidates.len()];

    // A chosen index that does a candidate's job (its keys extend it) rules it out.
    let ruled_out = |c: usize, picked: &[usize], useless: &[bool]| {
        useless[c]
            || picked.contains(&c)
            || picked.iter().any(|p| candidates[*p].supersedes.contains(&c))
    };
    for round in 1..=2 * candidates.len() {
        let left = (0..candidates.len()).filter(|c| !ruled_out(*c, &picked, &useless)).count();
        let chosen = picked.len();
        let stage = |weighed| Stage::Choosing {
            pass: pass.number,
            passes: pass.of,
            round,
            left,
            chosen,
            weighed,
        };
        let mut weighed = 0;
        progress(stage(weighed));
        let full = limits.max_indexes.is_some_and(|max| picked.len() >= max);
        // Under a budget every index that fits and helps is worth its bytes: the budget is
        // what the DBA chose to spend. Without one, small gains are left out.
        let least_net = if limits.budget_bytes.is_some() {
            0.0
        } else {
            limits.min_workload_gain * workload(weights, &current)
        };
        // What query q's weighted cost could fall by at most: to its floor.
        let to_floor =
            |q: usize| weights[q] * (current[q] - floors.get(q).copied().unwrap_or(0.0)).max(0.0);
        // The moves open this round.
        let mut moves: Vec<Open> = Vec::new();
        for (c, candidate) in candidates.iter().enumerate() {
            if ruled_out(c, &picked, &useless) {
                continue;
            }
            let replaces: Vec<usize> =
                picked.iter().copied().filter(|p| candidate.supersedes.contains(p)).collect();
            // One index per key: another INCLUDE list on a chosen key only as its replacement.
            if picked.iter().any(|p| candidate.same_key.contains(p) && !replaces.contains(p)) {
                continue;
            }
            if full && replaces.is_empty() {
                continue;
            }
            let freed: f64 = replaces.iter().map(|p| candidates[*p].size_bytes).sum();
            let added_bytes = candidate.size_bytes - freed;
            if limits.budget_bytes.is_some_and(|budget| used_bytes + added_bytes > budget) {
                continue;
            }
            moves.push(Open { candidate: c, replaces, added_bytes });
        }
        // A move's net benefit as evaluated, when it is one the round may take.
        let judge = |open: &Open, evaluation: &Evaluation, useless: &mut Vec<bool>| {
            let costs = &evaluation.costs;
            // Gains count when they are worth it; losses (a replaced index's) always count.
            let gain: f64 = costs
                .iter()
                .map(|(q, cost)| {
                    let delta = current[*q] - cost;
                    if delta < 0.0 || helps(current[*q], *cost) {
                        weights[*q] * delta
                    } else {
                        0.0
                    }
                })
                .sum();
            if !costs.iter().any(|(q, cost)| helps(current[*q], *cost)) {
                useless[open.candidate] = open.replaces.is_empty();
                return None;
            }
            let net = gain - candidates[open.candidate].write_cost
                + open.replaces.iter().map(|p| candidates[*p].write_cost).sum::<f64>();
            (net > 0.0 && net >= least_net).then_some(net)
        };
        // Moves evaluated since their queries last changed are judged as they stand; the others
        // are planned, the highest bound first, while their bound could still win.
        let mut top: Option<f64> = None;
        let mut to_plan: Vec<(f64, usize)> = Vec::new();
        for (m, open) in moves.iter().enumerate() {
            let last = evaluated[open.candidate].as_ref().filter(|e| e.replaces == open.replaces);
            if let Some(e) = last.filter(|e| e.fresh) {
                if let Some(net) = judge(open, e, &mut useless) {
                    let mine = score(net, open.added_bytes);
                    top = Some(top.map_or(mine, |t: f64| t.max(mine)));
                }
                continue;
            }
            if !lazy {
                to_plan.push((f64::INFINITY, m));
                continue;
            }
            // No set of candidates takes a query below its floor. (What a move saved when it
            // was planned does not bound what it saves later: indexes on the tables of a join
            // can help each other.)
            let c = open.candidate;
            let saved: f64 = candidates[c].queries.iter().map(|q| to_floor(*q)).sum();
            let bound = saved - candidates[c].write_cost
                + open.replaces.iter().map(|p| candidates[*p].write_cost).sum::<f64>();
            if bound > 0.0 && bound >= least_net {
                to_plan.push((score(bound, open.added_bytes), m));
            }
        }
        to_plan.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (bound, m) in to_plan {
            if lazy && top.is_some_and(|t| bound < t * PRUNE) {
                break;
            }
            let open = &moves[m];
            let c = open.candidate;
            let mut set: Vec<usize> =
                picked.iter().copied().filter(|p| !open.replaces.contains(p)).collect();
            set.push(c);
            let mut queries = candidates[c].queries.clone();
            if lazy {
                queries.sort_by(|a, b| to_floor(*b).total_cmp(&to_floor(*a)));
            }
            // Saved on the queries planned so far, and what the rest could save at most.
            let extra = open.replaces.iter().map(|p| candidates[*p].write_cost).sum::<f64>()
                - candidates[c].write_cost;
            let (mut planned_saving, mut rest) =
                (0.0, queries.iter().map(|q| to_floor(*q)).sum::<f64>());
            let mut costs: Vec<(usize, f64)> = Vec::with_capacity(queries.len());
            let mut hopeless = false;
            for (i, q) in queries.iter().enumerate() {
                if let Some(cost) = cost_with(&set, *q) {
                    costs.push((*q, cost));
                    planned_saving += (weights[*q] * (current[*q] - cost)).max(0.0);
                }
                rest -= to_floor(*q);
                let most = planned_saving + rest.max(0.0) + extra;
                // (Once all are planned the move is judged as it is.)
                if lazy
                    && i + 1 < queries.len()
                    && (most <= 0.0
                        || most < least_net
                        || top.is_some_and(|t| score(most, open.added_bytes) < t * PRUNE))
                {
                    hopeless = true;
                    break;
                }
            }
            weighed += 1;
            progress(stage(weighed));
            if hopeless {
                continue;
            }
            let evaluation = Evaluation { replaces: open.replaces.clone(), costs, fresh: true };
            if let Some(net) = judge(open, &evaluation, &mut useless) {
                let mine = score(net, open.added_bytes);
                top = Some(top.map_or(mine, |t: f64| t.max(mine)));
            }
            evaluated[c] = Some(evaluation);
        }
        // The best score wins; near-ties (within 2 %) go to the smaller addition. Candidates in
        // their order, as evaluated afresh.
        let mut best: Option<Move> = None;
        for open in &moves {
            let Some(e) = evaluated[open.candidate]
                .as_ref()
                .filter(|e| e.fresh && e.replaces == open.replaces)
            else {
                continue;
            };
            let Some(net) = judge(open, e, &mut useless) else { continue };
            let better = match &best {
                None => true,
                Some(b) => {
                    let (mine, theirs) =
                        (score(net, open.added_bytes), score(b.net, b.added_bytes));
                    mine > theirs * 1.02
                        || (mine >= theirs * 0.98 && open.added_bytes < b.added_bytes)
                }
            };
            if better {
                best = Some(Move {
                    candidate: open.candidate,
                    replaces: open.replaces.clone(),
                    net,
                    added_bytes: open.added_bytes,
                    costs: e.costs.clone(),
                });
            }
        }
        let Some(step) = best else { break };
        for (q, cost) in &step.costs {
            current[*q] = *cost;
        }
        // A replacement takes the place of the first index it replaces: the list stays in the
        // order of benefit, and the knee never cuts the index that serves what it took over.
        let at = picked.iter().position(|p| step.replaces.contains(p));
        picked.retain(|p| !step.replaces.contains(p));
        picked.insert(at.unwrap_or(picked.len()), step.candidate);
        used_bytes += step.added_bytes;
        // Moves that share a query with this one are out of date: planned again when their
        // bound could win.
        let touched: Vec<usize> = step.costs.iter().map(|(q, _)| *q).collect();
        for (other, candidate) in candidates.iter().enumerate() {
            if candidate.queries.iter().any(|q| touched.contains(q)) {
                if let Some(e) = evaluated[other].as_mut() {
                    e.fresh = false;
                }
            }
        }
    }
    let write_cost: f64 = picked.iter().map(|c| candidates[*c].write_cost).sum();
    (picked, workload(weights, &current) + write_cost)
}

/// Adds the chosen indexes one by one and measures what each changes; an index that helps
/// no query by then is left out.
fn evidence(
    weights: &[f64],
    base_costs: &[f64],
    candidates: &[CandidateCost],
    picked: &[usize],
    helps: impl Fn(f64, f64) -> bool,
    mut cost_with: impl FnMut(&[usize], usize) -> Option<f64>,
    progress: &mut dyn FnMut(Stage),
) -> Vec<Pick> {
    let mut current = base_costs.to_vec();
    let mut chosen: Vec<usize> = Vec::new();
    let mut picks = Vec::new();
    for (done, c) in picked.iter().enumerate() {
        progress(Stage::Measuring { done, total: picked.len() });
        chosen.push(*c);
        let costs: Vec<(usize, f64)> = candidates[*c]
            .queries
            .iter()
            .filter_map(|q| cost_with(&chosen, *q).map(|cost| (*q, cost)))
            .collect();
        let helped: Vec<(usize, f64, f64)> = costs
            .iter()
            .filter(|(q, cost)| helps(current[*q], *cost))
            .map(|(q, cost)| (*q, current[*q], *cost))
            .collect();
        if helped.is_empty() {
            chosen.pop();
            continue;
        }
        let before = workload(weights, &current);
        for (q, cost) in &costs {
            current[*q] = *cost;
        }
        picks.push(Pick {
            candidate: *c,
            workload_before: before,
            workload_after: workload(weights, &current),
            helped,
        });
    }
    picks
}

pub fn workload(weights: &[f64], costs: &[f64]) -> f64 {
    weights.iter().zip(costs).map(|(w, c)| w * c).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Query costs as a function of which candidates exist: each query has a base cost and
    /// each candidate a cost it reaches (the cheapest present wins).
    struct Model {
        base: Vec<f64>,
        /// (candidate, query, cost with it)
        effects: Vec<(usize, usize, f64)>,
    }

    impl Model {
        fn cost(&self, set: &[usize], q: usize) -> Option<f64> {
            let best =
                self.effects.iter().filter(|(c, qq, _)| *qq == q && set.contains(c)).map(|e| e.2);
            Some(best.fold(self.base[q], f64::min))
        }
    }

    fn cands(specs: &[(f64, f64, &[usize])]) -> Vec<CandidateCost> {
        specs
            .iter()
            .map(|(size, write, queries)| CandidateCost {
                size_bytes: *size,
                write_cost: *write,
                queries: queries.to_vec(),
                supersedes: vec![],
                same_key: vec![],
            })
            .collect()
    }

    const NO_LIMITS: Limits = Limits {
        budget_bytes: None,
        max_indexes: None,
        min_improvement: 0.05,
        min_workload_gain: 0.0,
    };

    /// Candidate 2 (composite) serves both queries; 0 and 1 each serve one.
    fn composite_and_singles() -> (Model, Vec<CandidateCost>) {
        let model = Model {
            base: vec![100.0, 100.0],
            effects: vec![(0, 0, 10.0), (1, 1, 10.0), (2, 0, 10.0), (2, 1, 10.0)],
        };
        (model, cands(&[(1e6, 0.0, &[0]), (1e6, 0.0, &[1]), (1.5e6, 0.0, &[0, 1])]))
    }

    #[test]
    fn one_composite_beats_two_singles_and_makes_them_useless() {
        let (model, candidates) = composite_and_singles();
        let picks =
            select(&[1.0, 1.0], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks.len(), 1, "{picks:?}");
        assert_eq!(picks[0].candidate, 2);
        assert_eq!(picks[0].workload_before, 200.0);
        assert_eq!(picks[0].workload_after, 20.0);
        assert_eq!(picks[0].helped, vec![(0, 100.0, 10.0), (1, 100.0, 10.0)]);
    }

    /// Progress names every greedy round with the candidates still in play, counts the ones
    /// weighed, then each chosen index measured; the picks are those of `select`.
    #[test]
    fn selection_reports_its_rounds_and_measurements() {
        let (model, candidates) = composite_and_singles();
        let mut stages = Vec::new();
        let picks = select_reporting(
            &[1.0, 1.0],
            &model.base,
            &[0.0, 0.0],
            &candidates,
            &NO_LIMITS,
            |s, q| model.cost(s, q),
            &mut |stage| stages.push(stage),
        );
        let plain =
            select(&[1.0, 1.0], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks, plain);
        let round = |round, left, chosen, weighed| Stage::Choosing {
            pass: 1,
            passes: 1,
            round,
            left,
            chosen,
            weighed,
        };
        // Round 1 weighs the composite first (it could save the most per byte) and then not the
        // singles (each could save less than it does); round 2 weighs the singles (they share its
        // queries), finds that they help nothing now and ends the selection.
        assert_eq!(
            stages,
            vec![
                round(1, 3, 0, 0),
                round(1, 3, 0, 1),
                round(2, 2, 1, 0),
                round(2, 2, 1, 1),
                round(2, 2, 1, 2),
                Stage::Measuring { done: 0, total: 1 },
            ]
        );
        // Under a budget both passes are named.
        let budget = Limits { budget_bytes: Some(1e7), ..NO_LIMITS };
        let mut passes = Vec::new();
        select_reporting(
            &[1.0, 1.0],
            &model.base,
            &[0.0, 0.0],
            &candidates,
            &budget,
            |s, q| model.cost(s, q),
            &mut |stage| {
                if let Stage::Choosing { pass, passes: of, weighed: 0, round: 1, .. } = stage {
                    passes.push((pass, of));
                }
            },
        );
        assert_eq!(passes, vec![(1, 2), (2, 2)]);
    }

    /// The review's case: A (1 MB) saves most; C, its covering merge (10 MB), saves a little
    /// more and replaces it last. Appended at the end, C was cut by the knee and A was gone:
    /// A's query lost its index. C takes A's place in the list.
    #[test]
    fn a_replacement_keeps_the_place_of_what_it_replaces() {
        let model = Model {
            base: vec![1000.0, 400.0, 400.0, 400.0],
            effects: vec![(0, 0, 100.0), (2, 0, 50.0), (1, 1, 100.0), (3, 2, 100.0), (4, 3, 100.0)],
        };
        let mut candidates = cands(&[
            (1e6, 0.0, &[0]),
            (1e6, 0.0, &[1]),
            (1e7, 0.0, &[0]),
            (1e6, 0.0, &[2]),
            (1e6, 0.0, &[3]),
        ]);
        candidates[2].supersedes = vec![0];
        let picks =
            select(&[1.0; 4], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        let chosen: Vec<usize> = picks.iter().map(|p| p.candidate).collect();
        assert!(chosen.contains(&0) || chosen.contains(&2), "query 0 lost its index: {chosen:?}");
        assert_eq!(chosen.first(), Some(&2), "{chosen:?}");
    }

    #[test]
    fn weights_decide_and_write_cost_can_veto() {
        let model = Model { base: vec![100.0, 100.0], effects: vec![(0, 0, 50.0), (1, 1, 10.0)] };
        let candidates = cands(&[(1.0, 0.0, &[0]), (1.0, 0.0, &[1])]);
        let picks =
            select(&[100.0, 1.0], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![0, 1]);
        // Writes to the second table cost more than the 90 its index saves.
        let heavy = cands(&[(1.0, 0.0, &[0]), (1.0, 91.0, &[1])]);
        let picks = select(&[100.0, 1.0], &model.base, &heavy, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn budget_and_count_limits_hold() {
        let model = Model {
            base: vec![100.0, 100.0, 100.0],
            effects: vec![(0, 0, 1.0), (1, 1, 2.0), (2, 2, 3.0)],
        };
        let candidates = cands(&[(10.0, 0.0, &[0]), (10.0, 0.0, &[1]), (5.0, 0.0, &[2])]);
        let limits = Limits { budget_bytes: Some(15.0), ..NO_LIMITS };
        let picks = select(&[1.0; 3], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![0, 2]);
        let limits = Limits { max_indexes: Some(1), ..NO_LIMITS };
        let picks = select(&[1.0; 3], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
        assert_eq!(picks.len(), 1);
    }

    #[test]
    fn small_improvements_do_not_count_and_near_ties_prefer_smaller() {
        let model = Model { base: vec![100.0], effects: vec![(0, 0, 97.0)] };
        let picks = select(&[1e9], &model.base, &cands(&[(1.0, 0.0, &[0])]), &NO_LIMITS, |s, q| {
            model.cost(s, q)
        });
        assert!(picks.is_empty(), "a 3 % gain is below min_improvement");
        let model = Model { base: vec![100.0], effects: vec![(0, 0, 10.0), (1, 0, 10.5)] };
        let candidates = cands(&[(9e6, 0.0, &[0]), (1e6, 0.0, &[0])]);
        let picks = select(&[1.0], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks[0].candidate, 1);
        assert_eq!(picks.len(), 1, "the bigger one no longer helps once the smaller exists");
    }

    #[test]
    fn a_longer_index_replaces_the_prefix_chosen_before_it() {
        // Candidate 0 (a) edges out candidate 1 (a, b) at first (a near tie, and smaller); then
        // (a, b) in place of (a) still gains on q2 more than it loses on q0 and q1.
        let model = Model {
            base: vec![100.0, 100.0, 100.0],
            effects: vec![
                (0, 0, 10.0),
                (0, 1, 10.0),
                (0, 2, 30.0),
                (1, 0, 12.0),
                (1, 1, 12.0),
                (1, 2, 25.0),
            ],
        };
        let mut candidates = cands(&[(1.0, 0.0, &[0, 1, 2]), (2.0, 0.0, &[0, 1, 2])]);
        candidates[1].supersedes = vec![0];
        let picks =
            select(&[1.0; 3], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![1], "{picks:?}");
        assert_eq!(picks[0].workload_after, 49.0);
        // At the index limit a replacement is still allowed; without room it is not.
        let limits = Limits { max_indexes: Some(1), ..NO_LIMITS };
        let picks = select(&[1.0; 3], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![1]);
        let limits = Limits { budget_bytes: Some(1.5), ..NO_LIMITS };
        let picks = select(&[1.0; 3], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn a_candidate_that_helps_nothing_is_not_planned_again() {
        let model = Model { base: vec![100.0, 100.0], effects: vec![(1, 0, 10.0), (2, 1, 10.0)] };
        let candidates = cands(&[(1.0, 0.0, &[0, 1]), (1.0, 0.0, &[0, 1]), (1.0, 0.0, &[0, 1])]);
        let mut planned_with_0 = 0;
        let picks = select(&[1.0, 1.0], &model.base, &candidates, &NO_LIMITS, |s, q| {
            planned_with_0 += usize::from(s.contains(&0));
            model.cost(s, q)
        });
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(planned_with_0, 2, "one evaluation over its two queries, then never again");
    }

    #[test]
    fn indexes_that_buy_little_of_the_remaining_workload_are_not_chosen() {
        // q0 dominates; an index that makes the small q1 ten times cheaper saves 0.9 % of it.
        let model = Model { base: vec![1000.0, 10.0], effects: vec![(0, 0, 100.0), (1, 1, 1.0)] };
        let candidates = cands(&[(1.0, 0.0, &[0]), (1.0, 0.0, &[1])]);
        let limits = Limits { min_workload_gain: 0.01, ..NO_LIMITS };
        let picks = select(&[1.0, 1.0], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
        // After the first pick q1 is 9 % of what remains (110): its index now counts.
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![0, 1]);
        let model = Model { base: vec![1000.0, 10.0], effects: vec![(0, 0, 500.0), (1, 1, 6.0)] };
        let picks = select(&[1.0, 1.0], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
        assert_eq!(
            picks.iter().map(|p| p.candidate).collect::<Vec<_>>(),
            vec![0],
            "4 of the remaining 510 is under 1 %"
        );
        let picks =
            select(&[1.0, 1.0], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks.len(), 2, "without the rule both are chosen");
    }

    #[test]
    fn under_a_budget_the_better_of_benefit_first_and_benefit_per_byte_first_is_kept() {
        let model = Model {
            base: vec![200.0; 3],
            effects: vec![(0, 0, 100.0), (1, 1, 140.0), (2, 2, 140.0)],
        };
        let order = |picks: Vec<Pick>| picks.iter().map(|p| p.candidate).collect::<Vec<_>>();
        // The largest (100 for 20 MB) fills the budget; two halves save 120 in it.
        let candidates = cands(&[(20e6, 0.0, &[0]), (10e6, 0.0, &[1]), (10e6, 0.0, &[2])]);
        let limits = Limits { budget_bytes: Some(20e6), ..NO_LIMITS };
        assert_eq!(
            order(select(&[1.0; 3], &model.base, &candidates, &limits, |s, q| model.cost(s, q))),
            vec![1, 2]
        );
        // Here the largest first leaves room for a small one (160); the densest first does not (120).
        let candidates = cands(&[(15e6, 0.0, &[0]), (5e6, 0.0, &[1]), (5e6, 0.0, &[2])]);
        let picks =
            order(select(&[1.0; 3], &model.base, &candidates, &limits, |s, q| model.cost(s, q)));
        assert_eq!(picks.len(), 2);
        assert_eq!(picks[0], 0, "{picks:?}");
        // Without a budget: most benefit per byte first, cut at the knee (60 per 5 MB twice,
        // then 100 for 15 MB: less per byte than the list's average).
        assert_eq!(
            order(select(&[1.0; 3], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q))),
            vec![1, 2]
        );
    }

    #[test]
    fn a_budget_is_filled_while_an_index_fits_and_helps() {
        // q0 dominates; the index for q1 saves under 1 % of the workload, which stops it
        // without a budget (min_workload_gain) but not inside one that has room for it.
        let model = Model { base: vec![1000.0, 10.0], effects: vec![(0, 0, 500.0), (1, 1, 6.0)] };
        let candidates = cands(&[(10.0, 0.0, &[0]), (5.0, 0.0, &[1])]);
        let limits = Limits { min_workload_gain: 0.01, ..NO_LIMITS };
        let order = |l: &Limits| {
            select(&[1.0, 1.0], &model.base, &candidates, l, |s, q| model.cost(s, q))
                .iter()
                .map(|p| p.candidate)
                .collect::<Vec<_>>()
        };
        assert_eq!(order(&limits), vec![0]);
        assert_eq!(order(&Limits { budget_bytes: Some(15.0), ..limits.clone() }), vec![0, 1]);
        assert_eq!(
            order(&Limits { budget_bytes: Some(14.0), ..limits }),
            vec![0],
            "no room for the second"
        );
    }

    #[test]
    fn the_knee_stops_before_a_flat_tail() {
        // Two indexes save 400 each for 1 MB; three more save 5 each for 10 MB: each still above
        // min_workload_gain (0.1 % of the rest), below the list's average saving per byte.
        let model = Model {
            base: vec![500.0, 500.0, 100.0, 100.0, 100.0],
            effects: vec![(0, 0, 100.0), (1, 1, 100.0), (2, 2, 95.0), (3, 3, 95.0), (4, 4, 95.0)],
        };
        let candidates = cands(&[
            (1e6, 0.0, &[0]),
            (1e6, 0.0, &[1]),
            (1e7, 0.0, &[2]),
            (1e7, 0.0, &[3]),
            (1e7, 0.0, &[4]),
        ]);
        let limits = Limits { min_workload_gain: 0.001, ..NO_LIMITS };
        let picks = select(&[1.0; 5], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![0, 1], "{picks:?}");
        // With a budget the tail is bought.
        let picks = select(
            &[1.0; 5],
            &model.base,
            &candidates,
            &Limits { budget_bytes: Some(1e9), ..limits },
            |s, q| model.cost(s, q),
        );
        assert_eq!(picks.len(), 5);
    }

    #[test]
    fn knee_of_curves() {
        assert_eq!(knee(&[]), 0);
        assert_eq!(knee(&[(0.0, 10.0), (1.0, 5.0)]), 1);
        assert_eq!(knee(&[(0.0, 10.0), (1.0, 5.0), (2.0, 4.0)]), 2, "two are kept whole");
        // One index removes 98 % of the cost; the next two each remove 90 % of what remains, for
        // as many bytes: on a linear scale they would look flat (knee after the first), by the
        // share of the remaining cost they save they are not; the last saves 5 % for 27 bytes.
        assert_eq!(knee(&[(0.0, 1e9), (1.0, 2e7), (2.0, 2e6), (3.0, 2e5), (30.0, 1.9e5)]), 3);
        // A straight line: every index buys as much per byte; all kept.
        assert_eq!(knee(&[(0.0, 100.0), (1.0, 75.0), (2.0, 50.0), (3.0, 25.0)]), 3);
        // Bends after the second point.
        assert_eq!(knee(&[(0.0, 100.0), (1.0, 50.0), (2.0, 10.0), (10.0, 8.0), (20.0, 7.0)]), 2);
        // Nothing saved: kept as chosen.
        assert_eq!(knee(&[(0.0, 10.0), (1.0, 10.0), (2.0, 10.0), (3.0, 10.0)]), 3);
    }

    #[test]
    fn one_index_per_key_and_a_merge_replaces_the_variants() {
        // Candidates 0 and 1: the same key with different INCLUDE lists, each making one query an
        // index-only scan; 2 is their merge (covers both), a little bigger than either.
        let model = Model {
            base: vec![100.0, 100.0],
            effects: vec![
                (0, 0, 10.0),
                (0, 1, 40.0),
                (1, 1, 10.0),
                (1, 0, 40.0),
                (2, 0, 11.0),
                (2, 1, 11.0),
            ],
        };
        let mut candidates =
            cands(&[(1e6, 0.0, &[0, 1]), (1e6, 0.0, &[0, 1]), (1.2e6, 0.0, &[0, 1])]);
        candidates[0].same_key = vec![1, 2];
        candidates[1].same_key = vec![0, 2];
        candidates[2].same_key = vec![0, 1];
        candidates[2].supersedes = vec![0, 1];
        let picks =
            select(&[1.0, 1.0], &model.base, &candidates, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![2], "{picks:?}");
        // Without the merge: one of the variants only, not both.
        let without: Vec<CandidateCost> = candidates[..2].to_vec();
        let picks = select(&[1.0, 1.0], &model.base, &without, &NO_LIMITS, |s, q| model.cost(s, q));
        assert_eq!(picks.len(), 1, "{picks:?}");
        // The merge is dropped when it costs more than it saves: a huge merged index loses to
        // one variant under a budget that does not hold it.
        let picks = select(
            &[1.0, 1.0],
            &model.base,
            &candidates,
            &Limits { budget_bytes: Some(1.1e6), ..NO_LIMITS },
            |s, q| model.cost(s, q),
        );
        assert_eq!(picks.len(), 1);
        assert_ne!(picks[0].candidate, 2);
    }

    #[test]
    fn the_curve_falls_as_bytes_grow() {
        let model = Model {
            base: vec![100.0, 80.0, 60.0, 40.0],
            effects: vec![(0, 0, 10.0), (1, 1, 20.0), (2, 2, 30.0), (3, 3, 35.0), (1, 0, 50.0)],
        };
        let candidates =
            cands(&[(3e6, 0.0, &[0]), (1e6, 0.0, &[0, 1]), (2e6, 0.0, &[2]), (5e6, 0.0, &[3])]);
        for limits in [NO_LIMITS, Limits { budget_bytes: Some(8e6), ..NO_LIMITS }] {
            let picks =
                select(&[1.0; 4], &model.base, &candidates, &limits, |s, q| model.cost(s, q));
            let points = curve(&picks, &candidates);
            assert_eq!(points.len(), picks.len() + 1);
            assert_eq!(points[0], (0.0, 280.0));
            for pair in points.windows(2) {
                assert!(pair[1].0 > pair[0].0 && pair[1].1 < pair[0].1, "{points:?}");
            }
            assert_eq!(points.last().unwrap().1, picks.last().unwrap().workload_after);
        }
    }

    /// Four strong candidates, one per query, and five weak ones that each touch all four
    /// queries: every pick touches the weak ones' queries. Eager rounds plan them again after
    /// each pick; lazy rounds plan them only when their bound could win: with no floors known,
    /// once (when only they are left, and turn out useless); with the queries' floors (what
    /// the strong ones reach), never (by then nothing is left above the floors).
    #[test]
    fn lazy_rounds_do_not_plan_what_cannot_win() {
        let mut effects: Vec<(usize, usize, f64)> = (0..4).map(|q| (q, q, 100.0)).collect();
        for weak in 4..9 {
            effects.extend((0..4).map(|q| (weak, q, 950.0)));
        }
        let model = Model { base: vec![1000.0; 4], effects };
        let mut specs: Vec<(f64, f64, &[usize])> = vec![(1e6, 0.0, &[0]); 4];
        for (q, spec) in specs.iter_mut().enumerate() {
            spec.2 = [&[0usize][..], &[1], &[2], &[3]][q];
        }
        specs.extend(std::iter::repeat_n((1e7, 0.0, &[0usize, 1, 2, 3][..]), 5));
        let candidates = cands(&specs);
        let run = |floors: Option<&[f64]>| {
            let mut weak_plans = 0;
            let picks = choose(
                &[1.0; 4],
                &model.base,
                floors,
                &candidates,
                &NO_LIMITS,
                |s, q| {
                    weak_plans += usize::from(s.iter().any(|c| *c >= 4));
                    model.cost(s, q)
                },
                &mut |_| {},
            );
            (picks, weak_plans)
        };
        let (eager, eager_plans) = run(None);
        assert_eq!(eager.iter().map(|p| p.candidate).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        // Eager: five weak candidates × four queries in each of the five rounds.
        assert_eq!(eager_plans, 100);
        let (lazy, lazy_plans) = run(Some(&[0.0; 4]));
        assert_eq!(lazy, eager);
        assert_eq!(lazy_plans, 20);
        let (lazy, lazy_plans) = run(Some(&[100.0; 4]));
        assert_eq!(lazy, eager);
        assert_eq!(lazy_plans, 0);
    }

    /// Indexes on two tables of a join can help each other: 1 alone saves little on q0, with 0
    /// much more. After 0 is chosen, 1 (its saving on q0 stale) must be weighed again at what
    /// it could save now, not at what it saved alone: it beats 3, which saves 300 on q1.
    #[test]
    fn lazy_rounds_weigh_again_indexes_that_help_each_other() {
        let cost = |s: &[usize], q: usize| {
            Some(match q {
                0 if s.contains(&0) && s.contains(&1) => 100.0,
                0 if s.contains(&0) => 650.0,
                0 if s.contains(&1) => 950.0,
                1 if s.contains(&3) => 700.0,
                _ => 1000.0,
            })
        };
        let candidates =
            cands(&[(1e6, 0.0, &[0]), (1e6, 0.0, &[0]), (1e6, 0.0, &[0]), (1e6, 0.0, &[1])]);
        let base = [1000.0, 1000.0];
        let order = |picks: Vec<Pick>| picks.iter().map(|p| p.candidate).collect::<Vec<_>>();
        let eager =
            order(choose(&[1.0; 2], &base, None, &candidates, &NO_LIMITS, cost, &mut |_| {}));
        assert_eq!(eager, vec![0, 1, 3]);
        let floors = [100.0, 700.0];
        let lazy =
            choose(&[1.0; 2], &base, Some(&floors), &candidates, &NO_LIMITS, cost, &mut |_| {});
        assert_eq!(order(lazy), eager);
    }

    /// On random workloads (costs: the cheapest candidate present wins) lazy rounds choose what
    /// eager rounds choose, with and without a budget, with and without floors, and plan less.
    #[test]
    fn lazy_and_eager_rounds_choose_alike() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let mut planned = (0, 0);
        for _ in 0..200 {
            let queries = 2 + next(6) as usize;
            let count = 2 + next(10) as usize;
            let base: Vec<f64> = (0..queries).map(|_| 100.0 + next(10_000) as f64).collect();
            let mut effects = Vec::new();
            let mut specs = Vec::new();
            for c in 0..count {
                let mut used: Vec<usize> = (0..queries).filter(|_| next(3) == 0).collect();
                if used.is_empty() {
                    used.push(next(queries as u64) as usize);
                }
                for q in &used {
                    effects.push((c, *q, base[*q] * next(100) as f64 / 100.0));
                }
                specs.push(((1 + next(50)) as f64 * 1e5, next(20) as f64, used));
            }
            let model = Model { base: base.clone(), effects };
            let candidates: Vec<CandidateCost> = specs
                .iter()
                .map(|(size, write, queries)| CandidateCost {
                    size_bytes: *size,
                    write_cost: *write,
                    queries: queries.clone(),
                    supersedes: vec![],
                    same_key: vec![],
                })
                .collect();
            let weights: Vec<f64> = (0..queries).map(|_| (1 + next(5)) as f64).collect();
            for limits in [
                Limits { min_workload_gain: 0.01, ..NO_LIMITS },
                Limits { budget_bytes: Some(2e6), ..NO_LIMITS },
            ] {
                let run = |floors: Option<&[f64]>| {
                    let mut plans = 0;
                    let picks = choose(
                        &weights,
                        &base,
                        floors,
                        &candidates,
                        &limits,
                        |s, q| {
                            plans += 1;
                            model.cost(s, q)
                        },
                        &mut |_| {},
                    );
                    (picks, plans)
                };
                let (eager, eager_plans) = run(None);
                // The floors: with every candidate, the cheapest effect wins.
                let all: Vec<usize> = (0..count).collect();
                let floors: Vec<f64> =
                    (0..queries).map(|q| model.cost(&all, q).expect("modelled")).collect();
                let (lazy, lazy_plans) = run(Some(&floors));
                assert_eq!(lazy, eager, "{candidates:?} {base:?}");
                assert_eq!(run(Some(&vec![0.0; queries])).0, eager, "no floors known");
                planned.0 += eager_plans;
                planned.1 += lazy_plans;
            }
        }
        assert!(planned.1 < planned.0, "lazy planned {} times, eager {}", planned.1, planned.0);
    }

    #[test]
    fn failed_planning_counts_as_no_help() {
        let candidates = cands(&[(1.0, 0.0, &[0])]);
        let picks = select(&[1.0], &[100.0], &candidates, &NO_LIMITS, |_, _| None);
        assert!(picks.is_empty());
    }
}
