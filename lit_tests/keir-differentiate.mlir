// RUN: keir-opt %s --keir-differentiate | FileCheck %s

// keir-differentiate expands every keir.grad(f, x, e) = e . df/dx into plain keir ops, one CHECK block per
// family of derivative rules (keir.dialect.derivatives), plus sharing, nesting and reductions.

// Linear ops (add, sub, neg): the cotangent passes through, signs fold.
// CHECK-LABEL: func.func @linear
// CHECK-NEXT:    %[[E:.*]] = "keir.var"() {category = "i", index = 2 : i64}
// CHECK-NEXT:    return %[[E]]
func.func @linear() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<1xf64>
  %a = "keir.add"(%x, %y) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %s = "keir.sub"(%y, %a) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %n = "keir.neg"(%s) : (vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%n, %x, %e) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// Product and quotient rules (mul, div): e/b is built once and serves both operands of the div.
// CHECK-LABEL: func.func @product
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 2 : i64}
// CHECK:         %[[T:.*]] = "keir.div"(%[[E]], %[[X]])
// CHECK-NEXT:    %[[DM:.*]] = "keir.mul"(%[[T]], %[[Y]])
// CHECK-NEXT:    %[[M:.*]] = "keir.mul"(%[[X]], %[[Y]])
// CHECK-NEXT:    %[[Q:.*]] = "keir.div"(%[[M]], %[[X]])
// CHECK-NEXT:    %[[DQ:.*]] = "keir.mul"(%[[T]], %[[Q]])
// CHECK-NEXT:    %[[R:.*]] = "keir.sub"(%[[DM]], %[[DQ]])
// CHECK-NEXT:    return %[[R]]
func.func @product() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<1xf64>
  %m = "keir.mul"(%x, %y) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %q = "keir.div"(%m, %x) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%q, %x, %e) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// exp, log, sqrt, rsqrt: each rule reuses the primal value (exp(x), rsqrt(.)) it needs. KeOps' conventions:
// sqrt' = rsqrt / 2 and rsqrt' = -rsqrt^3 / 2, both 0 at 0 since rsqrt(0) = 0.
// CHECK-LABEL: func.func @transcendental
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 1 : i64}
// CHECK-DAG:     %[[HALF:.*]] = "keir.constant"() {value = 0.5 : f64}
// CHECK-DAG:     %[[MHALF:.*]] = "keir.constant"() {value = -0.5 : f64}
// CHECK:         %[[ME:.*]] = "keir.mul"(%[[MHALF]], %[[E]])
// CHECK-NEXT:    %[[A:.*]] = "keir.exp"(%[[X]])
// CHECK-NEXT:    %[[B:.*]] = "keir.log"(%[[A]])
// CHECK-NEXT:    %[[C:.*]] = "keir.sqrt"(%[[B]])
// CHECK-NEXT:    %[[D:.*]] = "keir.rsqrt"(%[[C]])
// CHECK-NEXT:    %[[D3:.*]] = "keir.pow"(%[[D]]) {exponent = 3 : i64}
// CHECK-NEXT:    %[[GC:.*]] = "keir.mul"(%[[ME]], %[[D3]])
// CHECK-NEXT:    %[[HG:.*]] = "keir.mul"(%[[HALF]], %[[GC]])
// CHECK-NEXT:    %[[RB:.*]] = "keir.rsqrt"(%[[B]])
// CHECK-NEXT:    %[[GB:.*]] = "keir.mul"(%[[HG]], %[[RB]])
// CHECK-NEXT:    %[[GA:.*]] = "keir.div"(%[[GB]], %[[A]])
// CHECK-NEXT:    %[[GX:.*]] = "keir.mul"(%[[GA]], %[[A]])
// CHECK-NEXT:    return %[[GX]]
func.func @transcendental() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 1 : i64, category = "i"} : () -> vector<1xf64>
  %a = "keir.exp"(%x) : (vector<1xf64>) -> vector<1xf64>
  %b = "keir.log"(%a) : (vector<1xf64>) -> vector<1xf64>
  %c = "keir.sqrt"(%b) : (vector<1xf64>) -> vector<1xf64>
  %d = "keir.rsqrt"(%c) : (vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%d, %x, %e) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// square, pow, abs: n a^(n-1) with the power folded (3 a^2 is a square), sign(a) as a / |a|.
// CHECK-LABEL: func.func @powers
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 1 : i64}
// CHECK-DAG:     %[[THREE:.*]] = "keir.constant"() {value = 3.0 : f64}
// CHECK-DAG:     %[[TWO:.*]] = "keir.constant"() {value = 2.0 : f64}
// CHECK:         %[[A:.*]] = "keir.abs"(%[[X]])
// CHECK-NEXT:    %[[A2:.*]] = "keir.square"(%[[A]])
// CHECK-NEXT:    %[[DP:.*]] = "keir.mul"(%[[THREE]], %[[A2]])
// CHECK-NEXT:    %[[TWOE:.*]] = "keir.mul"(%[[TWO]], %[[E]])
// CHECK-NEXT:    %[[P:.*]] = "keir.pow"(%[[A]]) {exponent = 3 : i64}
// CHECK-NEXT:    %[[GP:.*]] = "keir.mul"(%[[TWOE]], %[[P]])
// CHECK-NEXT:    %[[GA:.*]] = "keir.mul"(%[[DP]], %[[GP]])
// CHECK-NEXT:    %[[SIGN:.*]] = "keir.sign"(%[[X]])
// CHECK-NEXT:    %[[GX:.*]] = "keir.mul"(%[[GA]], %[[SIGN]])
// CHECK-NEXT:    return %[[GX]]
func.func @powers() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 1 : i64, category = "i"} : () -> vector<1xf64>
  %a = "keir.abs"(%x) : (vector<1xf64>) -> vector<1xf64>
  %p = "keir.pow"(%a) {exponent = 3 : i64} : (vector<1xf64>) -> vector<1xf64>
  %s = "keir.square"(%p) : (vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%s, %x, %e) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// sum, dot, sqnorm2, sqdist (scalar results of vectors): the scalar cotangent broadcasts back;
// 2e is built once and serves sqnorm2 and sqdist.
// CHECK-LABEL: func.func @components
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64} : () -> vector<3xf64>
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64} : () -> vector<3xf64>
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 2 : i64} : () -> vector<1xf64>
// CHECK:         %[[TWOE:.*]] = "keir.mul"(%{{.*}}, %[[E]])
// CHECK-NEXT:    %[[N:.*]] = "keir.mul"(%[[TWOE]], %[[X]]) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[S:.*]] = "keir.add"(%[[E]], %[[N]]) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[T:.*]] = "keir.mul"(%[[E]], %[[Y]])
// CHECK-NEXT:    %[[ST:.*]] = "keir.add"(%[[S]], %[[T]])
// CHECK-NEXT:    %[[DIFF:.*]] = "keir.sub"(%[[X]], %[[Y]])
// CHECK-NEXT:    %[[D:.*]] = "keir.mul"(%[[TWOE]], %[[DIFF]])
// CHECK-NEXT:    %[[R:.*]] = "keir.add"(%[[ST]], %[[D]])
// CHECK-NEXT:    return %[[R]] : vector<3xf64>
func.func @components() -> vector<3xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %e = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<1xf64>
  %d = "keir.sqdist"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  %t = "keir.dot"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  %n = "keir.sqnorm2"(%x) : (vector<3xf64>) -> vector<1xf64>
  %s = "keir.sum"(%x) : (vector<3xf64>) -> vector<1xf64>
  %a = "keir.add"(%d, %t) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %b = "keir.add"(%n, %s) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %f = "keir.add"(%a, %b) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%f, %x, %e) : (vector<1xf64>, vector<3xf64>, vector<1xf64>) -> vector<3xf64>
  return %g : vector<3xf64>
}

// elem, extract, concat: cotangents are split by extract and put back in place with zeros.
// CHECK-LABEL: func.func @structure
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 1 : i64}
// CHECK-DAG:     %[[Z:.*]] = "keir.constant"() {value = 0.0 : f64}
// CHECK:         %[[TAIL:.*]] = "keir.extract"(%[[E]]) {length = 2 : i64, start = 1 : i64}
// CHECK-NEXT:    %[[B:.*]] = "keir.concat"(%[[TAIL]], %[[Z]]) : (vector<2xf64>, vector<1xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[ZZ:.*]] = "keir.concat"(%[[Z]], %[[Z]])
// CHECK-NEXT:    %[[HEAD:.*]] = "keir.elem"(%[[E]]) {index = 0 : i64}
// CHECK-NEXT:    %[[A:.*]] = "keir.concat"(%[[ZZ]], %[[HEAD]]) : (vector<2xf64>, vector<1xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[R:.*]] = "keir.add"(%[[B]], %[[A]])
// CHECK-NEXT:    return %[[R]]
func.func @structure() -> vector<3xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %e = "keir.var"() {index = 1 : i64, category = "i"} : () -> vector<3xf64>
  %a = "keir.elem"(%x) {index = 2 : i64} : (vector<3xf64>) -> vector<1xf64>
  %b = "keir.extract"(%x) {start = 0 : i64, length = 2 : i64} : (vector<3xf64>) -> vector<2xf64>
  %c = "keir.concat"(%a, %b) : (vector<1xf64>, vector<2xf64>) -> vector<3xf64>
  %g = "keir.grad"(%c, %x, %e) : (vector<3xf64>, vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  return %g : vector<3xf64>
}

// A dimension-1 operand broadcast over a vector: its cotangent is the sum over the components.
// CHECK-LABEL: func.func @broadcast
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 2 : i64}
// CHECK:         %[[M:.*]] = "keir.mul"(%[[E]], %[[X]]) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[S:.*]] = "keir.sum"(%[[M]]) : (vector<3xf64>) -> vector<1xf64>
// CHECK-NEXT:    return %[[S]] : vector<1xf64>
func.func @broadcast() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %p = "keir.var"() {index = 1 : i64, category = "p"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<3xf64>
  %m = "keir.mul"(%p, %x) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
  %g = "keir.grad"(%m, %p, %e) : (vector<3xf64>, vector<1xf64>, vector<3xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// sin, cos, atan2 (and asin, acos, atan): the chain rule through a trigonometric op and a two-argument one.
// CHECK-LABEL: func.func @trigonometric
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 2 : i64}
// CHECK:         %[[S:.*]] = "keir.sin"(%[[X]])
// CHECK-NEXT:    %[[S2:.*]] = "keir.square"(%[[S]])
// CHECK-NEXT:    %[[Y2:.*]] = "keir.square"(%[[Y]])
// CHECK-NEXT:    %[[R2:.*]] = "keir.add"(%[[S2]], %[[Y2]])
// CHECK-NEXT:    %[[Q:.*]] = "keir.div"(%[[E]], %[[R2]])
// CHECK-NEXT:    %[[GS:.*]] = "keir.mul"(%[[Q]], %[[Y]])
// CHECK-NEXT:    %[[C:.*]] = "keir.cos"(%[[X]])
// CHECK-NEXT:    %[[GX:.*]] = "keir.mul"(%[[GS]], %[[C]])
// CHECK-NEXT:    return %[[GX]]
func.func @trigonometric() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<1xf64>
  %s = "keir.sin"(%x) : (vector<1xf64>) -> vector<1xf64>
  %a = "keir.atan2"(%s, %y) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%a, %x, %e) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// relu, ifelse, comparisons: the taken branch gets the cotangent (where the condition is >= 0, as the forward
// selects), a comparison passes nothing back, and relu' = step (1 at 0, as KeOps).
// CHECK-LABEL: func.func @piecewise
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 2 : i64}
// CHECK:         %[[C:.*]] = "keir.lt"(%[[X]], %{{.*}})
// CHECK-NEXT:    %[[TAKEN:.*]] = "keir.ge"(%[[C]], %{{.*}})
// CHECK-NEXT:    %[[GR:.*]] = "keir.mul"(%[[E]], %[[TAKEN]])
// CHECK-NEXT:    %[[POS:.*]] = "keir.step"(%[[X]])
// CHECK-NEXT:    %[[GX:.*]] = "keir.mul"(%[[GR]], %[[POS]])
// CHECK-NEXT:    return %[[GX]]
func.func @piecewise() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<1xf64>
  %r = "keir.relu"(%x) : (vector<1xf64>) -> vector<1xf64>
  %c = "keir.lt"(%x, %y) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %f = "keir.ifelse"(%c, %r, %y) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%f, %x, %e) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// min, max of the components: the cotangent goes to the selected component.
// CHECK-LABEL: func.func @selection
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[E:.*]] = "keir.var"() {category = "i", index = 1 : i64}
// CHECK:         %[[K:.*]] = "keir.argmin"(%[[X]])
// CHECK-NEXT:    %[[HOT:.*]] = "keir.one_hot"(%[[K]]) {dim = 3 : i64} : (vector<1xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[GX:.*]] = "keir.mul"(%[[E]], %[[HOT]])
// CHECK-NEXT:    return %[[GX]] : vector<3xf64>
func.func @selection() -> vector<3xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %e = "keir.var"() {index = 1 : i64, category = "i"} : () -> vector<1xf64>
  %m = "keir.min"(%x) : (vector<3xf64>) -> vector<1xf64>
  %g = "keir.grad"(%m, %x, %e) : (vector<1xf64>, vector<3xf64>, vector<1xf64>) -> vector<3xf64>
  return %g : vector<3xf64>
}

// A shared subexpression (exp x, used by log and sqrt) gets one cotangent, the sum of its users'
// contributions, and is differentiated once: one multiplication by exp x.
// CHECK-LABEL: func.func @shared
// CHECK:         %[[S:.*]] = "keir.exp"
// CHECK-NOT:     "keir.exp"
// CHECK:         %[[G:.*]] = "keir.add"
// CHECK-NEXT:    %[[R:.*]] = "keir.mul"(%[[G]], %[[S]])
// CHECK-NEXT:    return %[[R]]
func.func @shared() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %e = "keir.var"() {index = 1 : i64, category = "i"} : () -> vector<1xf64>
  %s = "keir.exp"(%x) : (vector<1xf64>) -> vector<1xf64>
  %a = "keir.log"(%s) : (vector<1xf64>) -> vector<1xf64>
  %b = "keir.sqrt"(%s) : (vector<1xf64>) -> vector<1xf64>
  %f = "keir.mul"(%a, %b) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %g = "keir.grad"(%f, %x, %e) : (vector<1xf64>, vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %g : vector<1xf64>
}

// Grad(Grad(x + y, x, e), x, f): the inner grad is expanded first (to e), whose gradient is the zero vector.
// CHECK-LABEL: func.func @nested
// CHECK-NEXT:    %[[Z:.*]] = "keir.constant"() {value = 0.0 : f64}
// CHECK-NEXT:    %[[ZZ:.*]] = "keir.concat"(%[[Z]], %[[Z]])
// CHECK-NEXT:    %[[R:.*]] = "keir.concat"(%[[Z]], %[[ZZ]])
// CHECK-NEXT:    return %[[R]] : vector<3xf64>
// CHECK-NOT:     keir.var
func.func @nested() -> vector<3xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %e = "keir.var"() {index = 2 : i64, category = "i"} : () -> vector<3xf64>
  %f = "keir.var"() {index = 3 : i64, category = "i"} : () -> vector<3xf64>
  %a = "keir.add"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %g = "keir.grad"(%a, %x, %e) : (vector<3xf64>, vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %h = "keir.grad"(%g, %x, %f) : (vector<3xf64>, vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  return %h : vector<3xf64>
}

// A reduction of a gradient stays a reduction: the grad under keir.reduce is expanded in place.
// CHECK-LABEL: func.func @gauss_dx
// CHECK-NOT:     keir.grad
// CHECK:         %[[DIFF:.*]] = "keir.sub"
// CHECK-NEXT:    %[[G:.*]] = "keir.mul"(%{{.*}}, %[[DIFF]]) : (vector<1xf32>, vector<3xf32>) -> vector<3xf32>
// CHECK-NEXT:    %[[R:.*]] = "keir.reduce"(%[[G]]) {axis = 1 : i64, kind = "sum"}
// CHECK-NEXT:    return %[[R]] : vector<3xf32>
func.func @gauss_dx() -> vector<3xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf32>
  %b = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<1xf32>
  %e = "keir.var"() {index = 3 : i64, category = "i"} : () -> vector<1xf32>
  %d = "keir.sqdist"(%x, %y) : (vector<3xf32>, vector<3xf32>) -> vector<1xf32>
  %n = "keir.neg"(%d) : (vector<1xf32>) -> vector<1xf32>
  %k = "keir.exp"(%n) : (vector<1xf32>) -> vector<1xf32>
  %f = "keir.mul"(%k, %b) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %g = "keir.grad"(%f, %x, %e) : (vector<1xf32>, vector<3xf32>, vector<1xf32>) -> vector<3xf32>
  %r = "keir.reduce"(%g) {kind = "sum", axis = 1 : i64} : (vector<3xf32>) -> vector<3xf32>
  return %r : vector<3xf32>
}
