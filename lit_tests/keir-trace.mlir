// The last chunk is refused (so keir-opt exits with 1): stdout holds the others, stderr the diagnostic.
// RUN: not keir-opt %s --split-input-file --keir-trace 2>/dev/null | FileCheck %s
// RUN: not keir-opt %s --split-input-file --keir-trace 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR

// keir-trace expands keir.laplacian, keir.divergence and keir.trace by pushing a matrix cotangent (a sum of
// diagonal and rank-one terms, keir.dialect.linearity) back through the linear structure: one CHECK block
// per linearity rule, plus the Laplacian and divergence that are built on them.

// The Laplacian of exp(-|x - y|^2): the Hessian-vector product is -2 f v + 4 f <x - y, v> (x - y). Its
// trace is D (-2 f) from the scaling of v (a diagonal) and 4 f <x - y, x - y> from the rank-one term:
// no 3 x 3 matrix, no derivative per coordinate.
// CHECK-LABEL: func.func @laplacian
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[MINUS6:.*]] = "keir.constant"() {value = -6.0 : f64}
// CHECK-DAG:     %[[FOUR:.*]] = "keir.constant"() {value = 4.0 : f64}
// CHECK:         %[[F:.*]] = "keir.exp"
// CHECK-NEXT:    %[[DIAG:.*]] = "keir.mul"(%[[MINUS6]], %[[F]])
// CHECK-NEXT:    %[[F4:.*]] = "keir.mul"(%[[FOUR]], %[[F]])
// CHECK-NEXT:    %[[DIFF:.*]] = "keir.sub"(%[[X]], %[[Y]])
// CHECK-NEXT:    %[[LEFT:.*]] = "keir.mul"(%[[F4]], %[[DIFF]]) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[OUTER:.*]] = "keir.dot"(%[[LEFT]], %[[DIFF]])
// CHECK-NEXT:    %[[R:.*]] = "keir.add"(%[[DIAG]], %[[OUTER]])
// CHECK-NEXT:    return %[[R]] : vector<1xf64>
// CHECK-NOT:     keir.laplacian
func.func @laplacian() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %d = "keir.sqdist"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  %n = "keir.neg"(%d) : (vector<1xf64>) -> vector<1xf64>
  %f = "keir.exp"(%n) : (vector<1xf64>) -> vector<1xf64>
  %l = "keir.laplacian"(%f, %x) : (vector<1xf64>, vector<3xf64>) -> vector<1xf64>
  return %l : vector<1xf64>
}

// div(|x - y|^2 (x - y)) = D |x - y|^2 + 2 <x - y, x - y>: the divergence is the trace of the transposed
// Jacobian applied to a probe.
// CHECK-LABEL: func.func @divergence
// CHECK-DAG:     %[[THREE:.*]] = "keir.constant"() {value = 3.0 : f64}
// CHECK-DAG:     %[[TWO:.*]] = "keir.constant"() {value = 2.0 : f64}
// CHECK:         %[[DIFF:.*]] = "keir.sub"
// CHECK-NEXT:    %[[N:.*]] = "keir.sqnorm2"(%[[DIFF]])
// CHECK-NEXT:    %[[DIAG:.*]] = "keir.mul"(%[[THREE]], %[[N]])
// CHECK-NEXT:    %[[TWICE:.*]] = "keir.mul"(%[[TWO]], %[[DIFF]])
// CHECK-NEXT:    %[[OUTER:.*]] = "keir.dot"(%[[TWICE]], %[[DIFF]])
// CHECK-NEXT:    "keir.add"(%[[DIAG]], %[[OUTER]])
func.func @divergence() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %s = "keir.sub"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %d = "keir.sqnorm2"(%s) : (vector<3xf64>) -> vector<1xf64>
  %f = "keir.mul"(%d, %s) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
  %l = "keir.divergence"(%f, %x) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  return %l : vector<1xf64>
}

// mul, div, sub, neg, var: scalings keep the cotangent diagonal, -(a v - v * b / a) has the trace
// sum(b / a - a); a broadcast scalar a counts D times.
// CHECK-LABEL: func.func @scaling
// CHECK-DAG:     %[[A:.*]] = "keir.var"() {category = "j", index = 1 : i64} : () -> vector<1xf64>
// CHECK-DAG:     %[[B:.*]] = "keir.var"() {category = "j", index = 2 : i64} : () -> vector<3xf64>
// CHECK:         %[[INV:.*]] = "keir.div"(%{{.*}}, %[[A]])
// CHECK-NEXT:    %[[BA:.*]] = "keir.mul"(%[[INV]], %[[B]])
// CHECK-NEXT:    %[[D:.*]] = "keir.sub"(%[[BA]], %[[A]]) : (vector<3xf64>, vector<1xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[S:.*]] = "keir.sum"(%[[D]])
// CHECK-NEXT:    return %[[S]]
func.func @scaling() -> vector<1xf64> {
  %v = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %a = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %b = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<3xf64>
  %m = "keir.mul"(%a, %v) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
  %n = "keir.mul"(%v, %b) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %q = "keir.div"(%n, %a) : (vector<3xf64>, vector<1xf64>) -> vector<3xf64>
  %s = "keir.sub"(%m, %q) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %t = "keir.neg"(%s) : (vector<3xf64>) -> vector<3xf64>
  %r = "keir.trace"(%t, %v) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// dot, sum, add, and a scalar times a vector: (<u, v> + sum(v)) w is the rank-one map w (u + 1)^T,
// whose trace is <w, u + 1>.
// CHECK-LABEL: func.func @rank_one
// CHECK-DAG:     %[[U:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[W:.*]] = "keir.var"() {category = "j", index = 2 : i64}
// CHECK-DAG:     %[[ONE:.*]] = "keir.constant"() {value = 1.0 : f64}
// CHECK:         %[[U1:.*]] = "keir.add"(%[[ONE]], %[[U]]) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
// CHECK-NEXT:    %[[T:.*]] = "keir.dot"(%[[W]], %[[U1]])
// CHECK-NEXT:    return %[[T]]
func.func @rank_one() -> vector<1xf64> {
  %v = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %u = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %w = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<3xf64>
  %a = "keir.dot"(%u, %v) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  %b = "keir.sum"(%v) : (vector<3xf64>) -> vector<1xf64>
  %c = "keir.add"(%a, %b) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %m = "keir.mul"(%c, %w) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
  %r = "keir.trace"(%m, %v) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// elem, extract, concat: component access shifts the diagonal; only components that land where they came
// from count. (v0, v1, a v2) has trace 2 + a; (v1, v2, v2) has trace 1.
// CHECK-LABEL: func.func @components
// CHECK-DAG:     %[[A:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[ONE:.*]] = "keir.constant"() {value = 1.0 : f64}
// CHECK-DAG:     %[[TWO:.*]] = "keir.constant"() {value = 2.0 : f64}
// CHECK:         %[[S:.*]] = "keir.add"(%[[ONE]], %[[A]])
// CHECK-NEXT:    %[[T:.*]] = "keir.add"(%[[S]], %[[TWO]])
// CHECK-NEXT:    return %[[T]]
func.func @components() -> vector<1xf64> {
  %v = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %a = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %e = "keir.elem"(%v) {index = 2 : i64} : (vector<3xf64>) -> vector<1xf64>
  %x = "keir.extract"(%v) {start = 0 : i64, length = 2 : i64} : (vector<3xf64>) -> vector<2xf64>
  %s = "keir.mul"(%a, %e) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %c = "keir.concat"(%x, %s) : (vector<2xf64>, vector<1xf64>) -> vector<3xf64>
  %y = "keir.extract"(%v) {start = 1 : i64, length = 2 : i64} : (vector<3xf64>) -> vector<2xf64>
  %d = "keir.concat"(%y, %e) : (vector<2xf64>, vector<1xf64>) -> vector<3xf64>
  %t = "keir.add"(%c, %d) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %r = "keir.trace"(%t, %v) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// ifelse with a fixed condition selects between two linear maps: step(c) I + (1 - step(c)) (-I); the
// constant term u of the affine map drops out.
// CHECK-LABEL: func.func @ifelse_affine
// CHECK-DAG:     %[[C:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[TWO:.*]] = "keir.constant"() {value = 2.0 : f64}
// CHECK:         %[[TAKEN:.*]] = "keir.step"(%[[C]])
// CHECK-NEXT:    %[[OTHER:.*]] = "keir.sub"(%[[TAKEN]], %{{.*}})
// CHECK-NEXT:    %[[BOTH:.*]] = "keir.add"(%[[TAKEN]], %[[OTHER]])
// CHECK-NEXT:    "keir.mul"(%[[TWO]], %[[BOTH]])
// CHECK-NOT:     "keir.var"() {category = "j", index = 2 : i64}
func.func @ifelse_affine() -> vector<1xf64> {
  %v = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<2xf64>
  %c = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %u = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<2xf64>
  %n = "keir.neg"(%v) : (vector<2xf64>) -> vector<2xf64>
  %i = "keir.ifelse"(%c, %v, %n) : (vector<1xf64>, vector<2xf64>, vector<2xf64>) -> vector<2xf64>
  %t = "keir.add"(%i, %u) : (vector<2xf64>, vector<2xf64>) -> vector<2xf64>
  %r = "keir.trace"(%t, %v) : (vector<2xf64>, vector<2xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// A keir.grad around a Laplacian is left for keir-differentiate; the Laplacian inside it is expanded.
// CHECK-LABEL: func.func @gradient_of_laplacian
// CHECK-NOT:     keir.laplacian
// CHECK:         "keir.grad"
func.func @gradient_of_laplacian() -> vector<2xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<2xf64>
  %e = "keir.var"() {index = 1 : i64, category = "i"} : () -> vector<1xf64>
  %n = "keir.sqnorm2"(%x) : (vector<2xf64>) -> vector<1xf64>
  %s = "keir.square"(%n) : (vector<1xf64>) -> vector<1xf64>
  %l = "keir.laplacian"(%s, %x) : (vector<1xf64>, vector<2xf64>) -> vector<1xf64>
  %g = "keir.grad"(%l, %x, %e) : (vector<1xf64>, vector<2xf64>, vector<1xf64>) -> vector<2xf64>
  return %g : vector<2xf64>
}

// -----

// A map that is not linear in its variable is refused, naming the op.
// ERR: error: keir.trace: the formula is not linear in its variable: keir.exp
func.func @not_linear() -> vector<1xf64> {
  %v = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %e = "keir.exp"(%v) : (vector<1xf64>) -> vector<1xf64>
  %r = "keir.trace"(%e, %v) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
