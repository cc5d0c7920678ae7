//! The policies over one transaction (docs/BITCOIN.md, "Policies over one transaction"):
//! tainted value on a transaction's inputs becomes tainted value on its outputs and its fee.
//! Pure; amounts in the smallest unit.
//!
//! An output's taint is a set of intervals of its value ([`Taint`]): FIFO and LIFO need to
//! know which part of an input is tainted (the previous hop's order); poison, haircut and TIHO
//! only how much, and keep it as one interval from 0.

use crate::policy::Policy;

/// The tainted parts of a value `v`: sorted, disjoint, non-empty half-open intervals
/// `[start, end)` of the positions `0..v`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taint(Vec<(u64, u64)>);

impl Taint {
    /// Nothing tainted.
    pub fn none() -> Taint {
        Taint(Vec::new())
    }

    /// The first `amount` units tainted.
    pub fn prefix(amount: u64) -> Taint {
        if amount == 0 {
            Taint::none()
        } else {
            Taint(vec![(0, amount)])
        }
    }

    /// From intervals; they are sorted and merged, empty ones dropped.
    pub fn from_intervals(mut list: Vec<(u64, u64)>) -> Taint {
        list.retain(|(a, b)| a < b);
        list.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(list.len());
        for (a, b) in list {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Taint(out)
    }

    pub fn intervals(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// How much is tainted.
    pub fn amount(&self) -> u64 {
        self.0.iter().map(|(a, b)| b - a).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The part of `self` inside `[start, end)`, shifted to start at 0.
    fn window(&self, start: u64, end: u64) -> Taint {
        Taint(
            self.0
                .iter()
                .filter_map(|&(a, b)| {
                    let (a, b) = (a.max(start), b.min(end));
                    (a < b).then(|| (a - start, b - start))
                })
                .collect(),
        )
    }
}

/// One input of a transaction: the spent output's value and its tainted part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub value: u64,
    pub taint: Taint,
}

/// Where a transaction's tainted input goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Per output, in vout order.
    pub outputs: Vec<Taint>,
    /// Per output, the input (vin) its taint is traced to on an evidence path: under FIFO and
    /// LIFO the input its first tainted unit comes from, else the input with the most taint
    /// (the lowest vin on a tie). `None` for an untainted output.
    pub from: Vec<Option<usize>>,
    /// Taint paid to the miner as fee (lost: not followed into a coinbase).
    pub fee: u64,
}

/// Splits the inputs' taint over `outputs` (values in vout order) under `policy`. The
/// outputs' total must not exceed the inputs' (the store refuses such a transaction); an input's
/// taint must lie inside its value.
pub fn split(policy: Policy, inputs: &[Input], outputs: &[u64]) -> Split {
    let total_in: u64 = inputs.iter().map(|i| i.value).sum();
    let total_out: u64 = outputs.iter().sum();
    let fee = total_in.saturating_sub(total_out);
    let tainted: u64 = inputs.iter().map(|i| i.taint.amount()).sum();
    let mut s = Split {
        outputs: vec![Taint::none(); outputs.len()],
        from: vec![None; outputs.len()],
        fee: 0,
    };
    if tainted == 0 || total_in == 0 {
        return s;
    }
    match policy {
        Policy::Poison => {
            for (j, v) in outputs.iter().enumerate() {
                s.outputs[j] = Taint::prefix(*v);
            }
            s.fee = fee;
        }
        Policy::Haircut => haircut(&mut s, tainted, total_in, outputs, fee),
        Policy::Fifo | Policy::Lifo => line(&mut s, policy, inputs, outputs, total_in, fee),
        Policy::Tiho => {
            let mut order: Vec<usize> = (0..outputs.len()).collect();
            order.sort_by_key(|&j| (std::cmp::Reverse(outputs[j]), j));
            let mut left = tainted;
            for j in order {
                let t = left.min(outputs[j]);
                s.outputs[j] = Taint::prefix(t);
                left -= t;
            }
            s.fee = left;
        }
    }
    if !matches!(policy, Policy::Fifo | Policy::Lifo) {
        let most = (0..inputs.len())
            .max_by_key(|&i| (inputs[i].taint.amount(), std::cmp::Reverse(i)))
            .filter(|&i| !inputs[i].taint.is_empty());
        for (j, t) in s.outputs.iter().enumerate() {
            if !t.is_empty() {
                s.from[j] = most;
            }
        }
    }
    s
}

/// Haircut: each receiver (the outputs in vout order, then the fee) gets `T · v / V` rounded
/// down; the remainder is given from the last receiver back, each up to its value, so the
/// total `T` is conserved and no receiver holds more taint than value.
fn haircut(s: &mut Split, tainted: u64, total_in: u64, outputs: &[u64], fee: u64) {
    let share = |v: u64| (u128::from(tainted) * u128::from(v) / u128::from(total_in)) as u64;
    let mut values: Vec<u64> = outputs.to_vec();
    values.push(fee);
    let mut shares: Vec<u64> = values.iter().map(|v| share(*v)).collect();
    let mut left = tainted - shares.iter().sum::<u64>();
    for k in (0..values.len()).rev() {
        if left == 0 {
            break;
        }
        let add = left.min(values[k] - shares[k]);
        shares[k] += add;
        left -= add;
    }
    s.fee = shares.pop().unwrap_or(0);
    for (j, t) in shares.into_iter().enumerate() {
        s.outputs[j] = Taint::prefix(t);
    }
}

/// FIFO and LIFO: the inputs' values laid end to end in vin order (each keeping its tainted
/// intervals); FIFO's outputs take from the start of that line in vout order and the fee
/// takes the tail; LIFO's outputs take from its end (output 0 the last units) and the fee
/// the head.
fn line(s: &mut Split, policy: Policy, inputs: &[Input], outputs: &[u64], total: u64, fee: u64) {
    let mut all = Vec::new();
    let mut starts = Vec::with_capacity(inputs.len());
    let mut off = 0u64;
    for i in inputs {
        starts.push(off);
        all.extend(i.taint.intervals().iter().map(|(a, b)| (a + off, b + off)));
        off += i.value;
    }
    let line = Taint(all);
    let input_at = |pos: u64| starts.partition_point(|&st| st <= pos).saturating_sub(1);
    let mut pos = 0u64;
    for (j, v) in outputs.iter().enumerate() {
        let (start, end) = match policy {
            Policy::Lifo => (total - pos - v, total - pos),
            _ => (pos, pos + v),
        };
        pos += v;
        let t = line.window(start, end);
        if let Some(&(a, _)) = t.intervals().first() {
            s.from[j] = Some(input_at(start + a));
        }
        s.outputs[j] = t;
    }
    s.fee = match policy {
        Policy::Lifo => line.window(0, fee).amount(),
        _ => line.window(total - fee, total).amount(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(value: u64, taint: &[(u64, u64)]) -> Input {
        Input {
            value,
            taint: Taint::from_intervals(taint.to_vec()),
        }
    }

    fn amounts(s: &Split) -> Vec<u64> {
        s.outputs.iter().map(Taint::amount).collect()
    }

    /// Conservation: outputs plus fee hold exactly the input taint (every policy but poison),
    /// and no output holds more taint than its value.
    fn conserved(inputs: &[Input], outputs: &[u64]) {
        let t: u64 = inputs.iter().map(|i| i.taint.amount()).sum();
        for p in [Policy::Haircut, Policy::Fifo, Policy::Lifo, Policy::Tiho] {
            let s = split(p, inputs, outputs);
            assert_eq!(amounts(&s).iter().sum::<u64>() + s.fee, t, "{p}");
            for (j, o) in s.outputs.iter().enumerate() {
                assert!(o.intervals().iter().all(|&(_, b)| b <= outputs[j]), "{p}");
            }
        }
    }

    /// One wholly tainted input of 100,000 paying 60,000 and 30,000, fee 10,000.
    #[test]
    fn one_tainted_input_with_a_fee() {
        let ins = [input(100_000, &[(0, 100_000)])];
        let outs = [60_000, 30_000];
        for p in Policy::ALL {
            let s = split(p, &ins, &outs);
            assert_eq!(amounts(&s), vec![60_000, 30_000], "{p}");
            assert_eq!(s.fee, 10_000, "{p}: the fee takes its share");
            assert_eq!(s.from, vec![Some(0), Some(0)], "{p}");
        }
        conserved(&ins, &outs);
    }

    /// Partial taint: input 0 = 40,000 clean then 10,000 tainted ([40,000, 50,000)), input 1 =
    /// 50,000 clean; outputs 45,000 and 50,000, fee 5,000 (line: 0..50,000 is input 0).
    #[test]
    fn partial_taint_under_each_policy() {
        let ins = [input(50_000, &[(40_000, 50_000)]), input(50_000, &[])];
        let outs = [45_000, 50_000];
        // Poison: any taint taints every output wholly, and the fee.
        let s = split(Policy::Poison, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![45_000, 50_000], 5_000));
        // Haircut: T = 10,000 of V = 100,000: 10 % of each: 4,500, 5,000, fee 500.
        let s = split(Policy::Haircut, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![4_500, 5_000], 500));
        // FIFO: output 0 takes [0, 45,000): the taint's [40,000, 45,000) = 5,000; output 1
        // takes [45,000, 95,000): [45,000, 50,000) = 5,000, at its start; the fee's tail
        // [95,000, 100,000) is clean.
        let s = split(Policy::Fifo, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![5_000, 5_000], 0));
        assert_eq!(s.outputs[0].intervals(), &[(40_000, 45_000)]);
        assert_eq!(s.outputs[1].intervals(), &[(0, 5_000)]);
        assert_eq!(s.from, vec![Some(0), Some(0)]);
        // LIFO: output 0 takes the last 45,000 [55,000, 100,000): clean (input 1); output 1
        // takes [5,000, 55,000): the taint [40,000, 50,000) → [35,000, 45,000) of it; the fee
        // takes the head [0, 5,000): clean.
        let s = split(Policy::Lifo, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![0, 10_000], 0));
        assert_eq!(s.outputs[1].intervals(), &[(35_000, 45_000)]);
        assert_eq!(s.from, vec![None, Some(0)]);
        // TIHO: 10,000 to the highest output (50,000, vout 1).
        let s = split(Policy::Tiho, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![0, 10_000], 0));
        conserved(&ins, &outs);
    }

    /// Several tainted inputs (a consolidation): 30,000 of 30,000 and 20,000 of 70,000 into
    /// one output of 99,000 (fee 1,000).
    #[test]
    fn several_tainted_inputs() {
        let ins = [
            input(30_000, &[(0, 30_000)]),
            input(70_000, &[(50_000, 70_000)]),
        ];
        let outs = [99_000];
        let s = split(Policy::Haircut, &ins, &outs);
        // T = 50,000, V = 100,000: 49,500 and the fee 500.
        assert_eq!((amounts(&s), s.fee), (vec![49_500], 500));
        assert_eq!(s.from, vec![Some(0)], "the input with most taint");
        // FIFO: output [0, 99,000): taint [0, 30,000) and [80,000, 99,000) = 49,000; the
        // fee's tail [99,000, 100,000) is tainted: 1,000.
        let s = split(Policy::Fifo, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![49_000], 1_000));
        // LIFO: the fee takes the head [0, 1,000): tainted 1,000.
        let s = split(Policy::Lifo, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![49_000], 1_000));
        // TIHO: 50,000 into the only output.
        let s = split(Policy::Tiho, &ins, &outs);
        assert_eq!((amounts(&s), s.fee), (vec![50_000], 0));
        conserved(&ins, &outs);
    }

    /// Zero-value outputs (an OP_RETURN memo) take no taint under any policy, and move no
    /// position of the line.
    #[test]
    fn zero_value_and_op_return_outputs() {
        let ins = [input(10_000, &[(0, 10_000)])];
        let outs = [0, 9_000, 0];
        for p in Policy::ALL {
            let s = split(p, &ins, &outs);
            assert_eq!(amounts(&s), vec![0, 9_000, 0], "{p}");
            assert_eq!(s.fee, 1_000, "{p}");
            assert_eq!(s.from[0], None, "{p}");
        }
        conserved(&ins, &outs);
    }

    /// Haircut rounding: 1 tainted unit of 3 over three outputs of 1: each share rounds to 0;
    /// the remainder goes to the last receiver that has room (here the last output).
    #[test]
    fn haircut_rounding_conserves() {
        let ins = [input(3, &[(0, 1)])];
        let s = split(Policy::Haircut, &ins, &[1, 1, 1]);
        assert_eq!((amounts(&s), s.fee), (vec![0, 0, 1], 0));
        // 7 tainted of 10 over 3 and 3, fee 4: 2.1 → 2, 2.1 → 2, fee 2.8 → 2, remainder 1
        // to the fee (the last receiver).
        let ins = [input(10, &[(0, 7)])];
        let s = split(Policy::Haircut, &ins, &[3, 3]);
        assert_eq!((amounts(&s), s.fee), (vec![2, 2], 3));
        conserved(&ins, &[3, 3]);
        // Huge values do not overflow.
        let ins = [input(u64::MAX / 2, &[(0, u64::MAX / 4)])];
        conserved(&ins, &[u64::MAX / 4, u64::MAX / 8]);
    }

    /// TIHO: ties by vout; the taint above every output's value goes to the fee.
    #[test]
    fn tiho_order_and_overflow_to_fee() {
        let ins = [input(120, &[(0, 120)])];
        let s = split(Policy::Tiho, &ins, &[30, 40, 40]);
        assert_eq!((amounts(&s), s.fee), (vec![30, 40, 40], 10));
        let ins = [input(110, &[(0, 50)])];
        let s = split(Policy::Tiho, &ins, &[30, 40, 40]);
        assert_eq!(
            (amounts(&s), s.fee),
            (vec![0, 40, 10], 0),
            "vout 1 before 2"
        );
    }

    #[test]
    fn clean_inputs_taint_nothing() {
        let ins = [input(100, &[])];
        for p in Policy::ALL {
            let s = split(p, &ins, &[50, 40]);
            assert_eq!((amounts(&s), s.fee), (vec![0, 0], 0), "{p}");
        }
    }

    proptest::proptest! {
        /// Any transaction: under every policy but poison the taint is conserved (outputs plus
        /// fee), no output takes more taint than value nor the fee more than the fee, taint
        /// intervals lie inside their output; poison taints every output wholly.
        #[test]
        fn conserved_and_bounded(
            ins in proptest::collection::vec((1u64..1_000_000, 0u64..1_000_000, 0u64..1_000_000), 1..6),
            shares in proptest::collection::vec(0u64..1_000, 1..6),
            fee_ppm in 0u64..200_000,
        ) {
            let inputs: Vec<Input> = ins
                .iter()
                .map(|&(v, a, b)| {
                    let (a, b) = (a % (v + 1), b % (v + 1));
                    input(v, &[(a.min(b), a.max(b))])
                })
                .collect();
            let total: u64 = inputs.iter().map(|i| i.value).sum();
            let spend = total - total * fee_ppm / 1_000_000;
            let sum: u64 = shares.iter().sum::<u64>().max(1);
            let outputs: Vec<u64> = shares.iter().map(|s| spend * s / sum).collect();
            let fee = total - outputs.iter().sum::<u64>();
            conserved(&inputs, &outputs);
            let t: u64 = inputs.iter().map(|i| i.taint.amount()).sum();
            for p in Policy::ALL {
                let s = split(p, &inputs, &outputs);
                proptest::prop_assert!(s.fee <= fee, "{p}");
                for (j, o) in s.outputs.iter().enumerate() {
                    proptest::prop_assert!(o.amount() <= outputs[j], "{p}");
                    if p == Policy::Poison && t > 0 {
                        proptest::prop_assert_eq!(o.amount(), outputs[j]);
                    }
                }
            }
        }
    }

    #[test]
    fn intervals_merge() {
        let t = Taint::from_intervals(vec![(5, 9), (0, 2), (2, 3), (7, 12), (4, 4)]);
        assert_eq!(t.intervals(), &[(0, 3), (5, 12)]);
        assert_eq!(t.amount(), 10);
    }
}
