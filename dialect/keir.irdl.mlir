// The keir dialect, in IRDL. Loaded at run time by keir.dialect.load_dialect.
// Values are vectors (vector<Dxf32> or vector<Dxf64>); dimension rules are checked by keir's own
// verifier (keir.dialect.ops), since IRDL cannot state "equal, or one of them is 1".
irdl.dialect @keir {
  irdl.operation @var {
    %r = irdl.base "!builtin.vector"
    %index = irdl.base "#builtin.integer"
    %category = irdl.base "#builtin.string"
    irdl.attributes {"index" = %index, "category" = %category}
    irdl.results(r: %r)
  }
  irdl.operation @constant {
    %r = irdl.base "!builtin.vector"
    %value = irdl.base "#builtin.float"
    irdl.attributes {"value" = %value}
    irdl.results(r: %r)
  }
  irdl.operation @add {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @sub {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @mul {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @div {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @neg {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @exp {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @log {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @sqrt {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @rsqrt {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @square {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @pow {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    %exponent = irdl.base "#builtin.integer"
    irdl.attributes {"exponent" = %exponent}
    irdl.results(r: %v)
  }
  irdl.operation @abs {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @sum {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    irdl.results(r: %r)
  }
  irdl.operation @dot {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @sqdist {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @sqnorm2 {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    irdl.results(r: %r)
  }
  irdl.operation @elem {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    %index = irdl.base "#builtin.integer"
    irdl.attributes {"index" = %index}
    irdl.results(r: %r)
  }
  irdl.operation @extract {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    %start = irdl.base "#builtin.integer"
    %length = irdl.base "#builtin.integer"
    irdl.attributes {"start" = %start, "length" = %length}
    irdl.results(r: %r)
  }
  irdl.operation @concat {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @sin {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @cos {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @asin {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @acos {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @atan {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @atan2 {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @sign {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @step {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @relu {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @floor {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @round {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    %digits = irdl.base "#builtin.integer"
    irdl.attributes {"digits" = %digits}
    irdl.results(r: %v)
  }
  irdl.operation @xlogx {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @sinxdivx {
    %v = irdl.base "!builtin.vector"
    irdl.operands(x: %v)
    irdl.results(r: %v)
  }
  irdl.operation @lt {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @le {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @gt {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @ge {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @eq {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @ne {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @clamp {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %a2 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1, z: %a2)
    irdl.results(r: %r)
  }
  irdl.operation @ifelse {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %a2 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0, y: %a1, z: %a2)
    irdl.results(r: %r)
  }
  irdl.operation @min {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    irdl.results(r: %r)
  }
  irdl.operation @max {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    irdl.results(r: %r)
  }
  irdl.operation @argmin {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    irdl.results(r: %r)
  }
  irdl.operation @argmax {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    irdl.results(r: %r)
  }
  irdl.operation @one_hot {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    %dim = irdl.base "#builtin.integer"
    irdl.attributes {"dim" = %dim}
    irdl.results(r: %r)
  }
  irdl.operation @grad {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %a2 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(f: %a0, x: %a1, e: %a2)
    irdl.results(r: %r)
  }
  irdl.operation @laplacian {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(f: %a0, x: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @divergence {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(f: %a0, x: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @trace {
    %a0 = irdl.base "!builtin.vector"
    %a1 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(f: %a0, x: %a1)
    irdl.results(r: %r)
  }
  irdl.operation @reduce {
    %a0 = irdl.base "!builtin.vector"
    %r = irdl.base "!builtin.vector"
    irdl.operands(x: %a0)
    %kind = irdl.base "#builtin.string"
    %axis = irdl.base "#builtin.integer"
    irdl.attributes {"kind" = %kind, "axis" = %axis}
    irdl.results(r: %r)
  }
}
