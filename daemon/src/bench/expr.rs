//! pgbench's `\set` expressions: integer and double literals, `:var`, + - * / %, parentheses,
//! unary minus and the functions random, random_exponential, random_gaussian, abs, least,
//! greatest. A small recursive-descent parser; evaluation follows pgbench's arithmetic
//! (integers stay integers, a double anywhere makes the result a double).

use std::collections::HashMap;

/// A client's variables. Looked up a dozen times per TPC-B transaction: a cheap hash, not
/// the DoS-resistant default (the names come from the user's own scripts).
pub type Vars = HashMap<String, Value, rustc_hash::FxBuildHasher>;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Double(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Double(d) => d,
        }
    }

    fn as_int(self, what: &str) -> Result<i64, String> {
        match self {
            Value::Int(i) => Ok(i),
            Value::Double(d) if d.is_finite() && d.fract() == 0.0 && d.abs() < 9.0e18 => {
                Ok(d as i64)
            }
            Value::Double(d) => Err(format!("{what} must be an integer, got {d}")),
        }
    }
}

impl Value {
    /// Appends the value as text, as Display writes it (an integer without the formatter).
    pub fn push_to(self, out: &mut String) {
        match self {
            Value::Int(i) => out.push_str(itoa::Buffer::new().format(i)),
            Value::Double(d) => {
                use std::fmt::Write;
                let _ = write!(out, "{d}");
            }
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(Value),
    Var(String),
    Neg(Box<Expr>),
    Binary(char, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Random,
    RandomExponential,
    RandomGaussian,
    Abs,
    Least,
    Greatest,
}

impl Func {
    fn of(name: &str) -> Option<(Func, std::ops::RangeInclusive<usize>)> {
        Some(match name.to_ascii_lowercase().as_str() {
            "random" => (Func::Random, 2..=2),
            "random_exponential" => (Func::RandomExponential, 3..=3),
            "random_gaussian" => (Func::RandomGaussian, 3..=3),
            "abs" => (Func::Abs, 1..=1),
            "least" => (Func::Least, 1..=usize::MAX),
            "greatest" => (Func::Greatest, 1..=usize::MAX),
            _ => return None,
        })
    }
}

/// Parses a whole expression; the error says what was expected where.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let e = p.expr()?;
    p.skip_ws();
    if p.i < p.s.len() {
        return Err(format!("unexpected \"{}\" at column {}", &text[p.i..], p.i + 1));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            left = Expr::Binary(op as char, Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.i += 1;
            left = Expr::Binary(op as char, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(b'-') => {
                self.i += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(b'+') => {
                self.i += 1;
                self.unary()
            }
            _ => self.primary(),
        }
    }

    fn ident(&mut self) -> &str {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let column = self.i + 1;
        match self.peek() {
            None => Err("expression ends early".into()),
            Some(b'(') => {
                self.i += 1;
                let e = self.expr()?;
                if self.peek() != Some(b')') {
                    return Err(format!("missing \")\" at column {}", self.i + 1));
                }
                self.i += 1;
                Ok(e)
            }
            Some(b':') => {
                self.i += 1;
                let name = self.ident().to_string();
                if name.is_empty() {
                    return Err(format!("a variable name must follow \":\" at column {column}"));
                }
                Ok(Expr::Var(name))
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit()
                        || matches!(self.s[self.i], b'.' | b'e' | b'E'))
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                if let Ok(i) = text.parse::<i64>() {
                    Ok(Expr::Const(Value::Int(i)))
                } else {
                    text.parse::<f64>()
                        .map(|d| Expr::Const(Value::Double(d)))
                        .map_err(|_| format!("bad number \"{text}\" at column {column}"))
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let name = self.ident().to_string();
                let (func, arity) = Func::of(&name)
                    .ok_or_else(|| format!("unknown function \"{name}\" at column {column}"))?;
                if self.peek() != Some(b'(') {
                    return Err(format!("\"(\" expected after \"{name}\""));
                }
                self.i += 1;
                let mut args = Vec::new();
                if self.peek() != Some(b')') {
                    loop {
                        args.push(self.expr()?);
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b')') => break,
                            _ => {
                                return Err(format!(
                                    "\",\" or \")\" expected in {name}() at column {}",
                                    self.i + 1
                                ))
                            }
                        }
                    }
                }
                self.i += 1;
                if !arity.contains(&args.len()) {
                    return Err(format!(
                        "{name}() takes {} argument(s), got {}",
                        arity.start(),
                        args.len()
                    ));
                }
                Ok(Expr::Call(func, args))
            }
            Some(c) => Err(format!("unexpected \"{}\" at column {column}", c as char)),
        }
    }
}

/// A fast generator per client (splitmix64): statistical quality is ample for picking keys.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        (lo as i128 + (self.next_u64() as u128 % span) as i128) as i64
    }
}

pub fn eval(e: &Expr, vars: &Vars, rng: &mut Rng) -> Result<Value, String> {
    Ok(match e {
        Expr::Const(v) => *v,
        Expr::Var(name) => *vars.get(name).ok_or_else(|| format!("undefined variable :{name}"))?,
        Expr::Neg(x) => match eval(x, vars, rng)? {
            Value::Int(i) => Value::Int(i.checked_neg().ok_or("integer out of range")?),
            Value::Double(d) => Value::Double(-d),
        },
        Expr::Binary(op, a, b) => binary(*op, eval(a, vars, rng)?, eval(b, vars, rng)?)?,
        // Up to 3 arguments (all but long least/greatest lists) without an allocation.
        Expr::Call(func, args) if args.len() <= 3 => {
            let mut values = [Value::Int(0); 3];
            for (value, arg) in values.iter_mut().zip(args) {
                *value = eval(arg, vars, rng)?;
            }
            call(*func, &values[..args.len()], rng)?
        }
        Expr::Call(func, args) => {
            let args = args.iter().map(|a| eval(a, vars, rng)).collect::<Result<Vec<_>, _>>()?;
            call(*func, &args, rng)?
        }
    })
}

fn binary(op: char, a: Value, b: Value) -> Result<Value, String> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let r = match op {
            '+' => x.checked_add(y),
            '-' => x.checked_sub(y),
            '*' => x.checked_mul(y),
            '/' | '%' if y == 0 => return Err("division by zero".into()),
            '/' => x.checked_div(y),
            _ => x.checked_rem(y),
        };
        return r.map(Value::Int).ok_or_else(|| "integer out of range".into());
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    Ok(Value::Double(match op {
        '+' => x + y,
        '-' => x - y,
        '*' => x * y,
        '/' if y == 0.0 => return Err("division by zero".into()),
        '/' => x / y,
        _ => return Err("% needs integers".into()),
    }))
}

fn call(func: Func, args: &[Value], rng: &mut Rng) -> Result<Value, String> {
    let bounds = || -> Result<(i64, i64), String> {
        let (lo, hi) = (args[0].as_int("a random bound")?, args[1].as_int("a random bound")?);
        if lo > hi {
            return Err(format!("empty range given to random: {lo} > {hi}"));
        }
        Ok((lo, hi))
    };
    Ok(match func {
        Func::Random => {
            let (lo, hi) = bounds()?;
            Value::Int(rng.range(lo, hi))
        }
        // pgbench's formulas, so that a script picks the same distribution of keys.
        Func::RandomExponential => {
            let (lo, hi) = bounds()?;
            let param = args[2].as_f64();
            if param <= 0.0 {
                return Err(format!(
                    "exponential parameter must be greater than zero, got {param}"
                ));
            }
            let cut = (-param).exp();
            let uniform = 1.0 - rng.unit();
            let r = -(cut + (1.0 - cut) * uniform).ln() / param;
            Value::Int(lo + ((hi - lo + 1) as f64 * r) as i64)
        }
        Func::RandomGaussian => {
            let (lo, hi) = bounds()?;
            let param = args[2].as_f64();
            if param < 2.0 {
                return Err(format!("gaussian parameter must be at least 2.0, got {param}"));
            }
            let stdev = loop {
                let (u1, u2) = (1.0 - rng.unit(), rng.unit());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).sin();
                if z.abs() < param {
                    break z;
                }
            };
            let r = (stdev + param) / (param * 2.0);
            Value::Int(lo + ((hi - lo + 1) as f64 * r) as i64)
        }
        Func::Abs => match args[0] {
            Value::Int(i) => Value::Int(i.checked_abs().ok_or("integer out of range")?),
            Value::Double(d) => Value::Double(d.abs()),
        },
        Func::Least | Func::Greatest => {
            let pick_least = func == Func::Least;
            let mut best = args[0];
            for &v in &args[1..] {
                if (v.as_f64() < best.as_f64()) == pick_least && v.as_f64() != best.as_f64() {
                    best = v;
                }
            }
            best
        }
    })
}

/// The variables an expression reads.
pub fn variables<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
    match e {
        Expr::Const(_) => {}
        Expr::Var(name) => out.push(name),
        Expr::Neg(x) => variables(x, out),
        Expr::Binary(_, a, b) => {
            variables(a, out);
            variables(b, out);
        }
        Expr::Call(_, args) => args.iter().for_each(|a| variables(a, out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vars: &[(&str, i64)]) -> Result<Value, String> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), Value::Int(*v))).collect();
        eval(&parse(text)?, &vars, &mut Rng::new(7))
    }

    #[test]
    fn values_are_written_as_display_writes_them() {
        for value in [
            Value::Int(0),
            Value::Int(-5),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Double(1.5),
            Value::Double(-0.25),
            Value::Double(3.0),
        ] {
            let mut text = String::from("x=");
            value.push_to(&mut text);
            assert_eq!(text, format!("x={value}"));
        }
    }

    #[test]
    fn arithmetic_follows_precedence_and_pgbench_integer_rules() {
        assert_eq!(run("1 + 2 * 3", &[]), Ok(Value::Int(7)));
        assert_eq!(run("(1 + 2) * 3", &[]), Ok(Value::Int(9)));
        assert_eq!(run("100000 * :scale", &[("scale", 10)]), Ok(Value::Int(1_000_000)));
        assert_eq!(run("-7 / 2", &[]), Ok(Value::Int(-3)));
        assert_eq!(run("-7 % 3", &[]), Ok(Value::Int(-1)));
        assert_eq!(run("10 - -3", &[]), Ok(Value::Int(13)));
        assert_eq!(run("1.5 * 2", &[]), Ok(Value::Double(3.0)));
        assert_eq!(run("greatest(3, :a, 1)", &[("a", 9)]), Ok(Value::Int(9)));
        assert_eq!(run("least(3, :a, 1)", &[("a", 9)]), Ok(Value::Int(1)));
        assert_eq!(run("abs(-4)", &[]), Ok(Value::Int(4)));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(run("1 / 0", &[]), Err("division by zero".into()));
        assert_eq!(run(":nope + 1", &[]), Err("undefined variable :nope".into()));
        assert!(parse("random(1)").unwrap_err().contains("takes 2 argument"));
        assert!(parse("rand(1, 2)").unwrap_err().contains("unknown function \"rand\""));
        assert!(parse("1 +").unwrap_err().contains("ends early"));
        assert!(parse("(1 + 2").unwrap_err().contains("missing \")\""));
        assert!(parse("1 2").unwrap_err().contains("unexpected \"2\""));
        assert!(run("random(5, 1)", &[]).unwrap_err().contains("empty range"));
        assert!(run("9223372036854775807 + 1", &[]).unwrap_err().contains("out of range"));
    }

    #[test]
    fn random_functions_stay_in_range_and_have_their_shape() {
        let mut rng = Rng::new(42);
        let vars = Vars::default();
        let uniform = parse("random(-5000, 5000)").unwrap();
        let (mut lo_seen, mut hi_seen) = (false, false);
        for _ in 0..200_000 {
            let Value::Int(v) = eval(&uniform, &vars, &mut rng).unwrap() else { panic!() };
            assert!((-5000..=5000).contains(&v));
            lo_seen |= v == -5000;
            hi_seen |= v == 5000;
        }
        assert!(lo_seen && hi_seen, "both ends reachable");
        // Exponential with parameter 8 over 1..=100: P(first decile) = 1 - e^-0.8 ≈ 0.55.
        let exp = parse("random_exponential(1, 100, 8)").unwrap();
        let n = 100_000;
        let low = (0..n)
            .filter(|_| matches!(eval(&exp, &vars, &mut rng), Ok(Value::Int(v)) if v <= 10))
            .count();
        let share = low as f64 / n as f64;
        assert!((share - (1.0 - (-0.8f64).exp())).abs() < 0.01, "first decile share {share}");
        // Gaussian with parameter 2.5 over 1..=100: symmetric around the middle.
        let gauss = parse("random_gaussian(1, 100, 2.5)").unwrap();
        let mean =
            (0..n).map(|_| eval(&gauss, &vars, &mut rng).unwrap().as_f64()).sum::<f64>() / n as f64;
        assert!((mean - 50.5).abs() < 0.5, "mean {mean}");
    }
}
