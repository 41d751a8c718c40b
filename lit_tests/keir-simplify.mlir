// RUN: keir-opt %s --keir-simplify | FileCheck %s
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{assume-finite=true})' | FileCheck %s --check-prefix=FINITE

// keir-simplify: one CHECK block per family of rewrite rules (keir.compiler.passes.keir_simplify).

// Constant folding with exact rationals: x / 3 * 3 is x, and 1/3 + 1/6 is 1/2 exactly (in floats,
// 0.49999999999999994).
// CHECK-LABEL: func.func @exact_constants
// CHECK-NEXT:    %[[X:.*]] = "keir.var"
// CHECK-NEXT:    %[[HALF:.*]] = "keir.constant"() {value = 0.5 : f64}
// CHECK-NEXT:    %[[R:.*]] = "keir.mul"(%[[HALF]], %[[X]])
// CHECK-NEXT:    return %[[R]]
func.func @exact_constants() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %c3 = "keir.constant"() {value = 3.0 : f64} : () -> vector<1xf64>
  %c1 = "keir.constant"() {value = 1.0 : f64} : () -> vector<1xf64>
  %c6 = "keir.constant"() {value = 6.0 : f64} : () -> vector<1xf64>
  %a = "keir.div"(%x, %c3) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %b = "keir.mul"(%a, %c3) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %t = "keir.div"(%c1, %c3) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %s = "keir.div"(%c1, %c6) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %h = "keir.add"(%t, %s) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.mul"(%b, %h) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// Zero and one propagation (x * 0, y * 1) and sign pulling ((-x) * y => -(y * x)).
// CHECK-LABEL: func.func @zeros_ones_signs
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "j", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-NOT:     keir.constant
// CHECK:         %[[M:.*]] = "keir.mul"(%[[Y]], %[[X]])
// CHECK-NEXT:    %[[R:.*]] = "keir.neg"(%[[M]])
// CHECK-NEXT:    return %[[R]]
func.func @zeros_ones_signs() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %c0 = "keir.constant"() {value = 0.0 : f64} : () -> vector<1xf64>
  %c1 = "keir.constant"() {value = 1.0 : f64} : () -> vector<1xf64>
  %z = "keir.mul"(%x, %c0) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %o = "keir.mul"(%y, %c1) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %n = "keir.neg"(%x) : (vector<1xf64>) -> vector<1xf64>
  %p = "keir.mul"(%n, %o) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.add"(%z, %p) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// y * y => square(y); s + s => 2 s; exp(x) exp(y) stays (exp(1000) exp(-1000) is NaN, exp(0) is not), and
// becomes exp(x + y) where the formula may assume finite values.
// CHECK-LABEL: func.func @powers_and_exponentials
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "j", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[TWO:.*]] = "keir.constant"() {value = 2.0 : f64}
// CHECK:         %[[SQ:.*]] = "keir.square"(%[[Y]])
// CHECK-NEXT:    %[[TWICE:.*]] = "keir.mul"(%[[TWO]], %[[SQ]])
// CHECK-NEXT:    %[[EX:.*]] = "keir.exp"(%[[X]])
// CHECK-NEXT:    %[[EY:.*]] = "keir.exp"(%[[Y]])
// CHECK-NEXT:    %[[E:.*]] = "keir.mul"(%[[EX]], %[[EY]])
// CHECK-NEXT:    "keir.add"(%[[TWICE]], %[[E]])
// FINITE-LABEL: func.func @powers_and_exponentials
// FINITE-DAG:     %[[X:.*]] = "keir.var"() {category = "j", index = 0 : i64}
// FINITE-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// FINITE:         %[[ARG:.*]] = "keir.add"(%[[Y]], %[[X]])
// FINITE-NEXT:    %[[E:.*]] = "keir.exp"(%[[ARG]])
// FINITE-NOT:     "keir.exp"
// FINITE:         return
func.func @powers_and_exponentials() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %a = "keir.exp"(%x) : (vector<1xf64>) -> vector<1xf64>
  %b = "keir.exp"(%y) : (vector<1xf64>) -> vector<1xf64>
  %e = "keir.mul"(%a, %b) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %s = "keir.mul"(%y, %y) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %t = "keir.add"(%s, %s) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.add"(%e, %t) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// Constant and parameter factors move out of products: exp(-d / (2 s s)) becomes exp(r d) with
// r = -0.5 / square(s) computed once per call, so sigma inside costs one multiplication per pair.
// CHECK-LABEL: func.func @sigma_inside
// CHECK-DAG:     %[[S:.*]] = "keir.var"() {category = "p", index = 2 : i64}
// CHECK-DAG:     %[[MHALF:.*]] = "keir.constant"() {value = -0.5 : f64}
// CHECK:         %[[SQ:.*]] = "keir.square"(%[[S]])
// CHECK-NEXT:    %[[R:.*]] = "keir.div"(%[[MHALF]], %[[SQ]])
// CHECK-NEXT:    %[[D:.*]] = "keir.sqdist"
// CHECK-NEXT:    %[[A:.*]] = "keir.mul"(%[[R]], %[[D]])
// CHECK-NEXT:    %[[E:.*]] = "keir.exp"(%[[A]])
// CHECK-NEXT:    "keir.reduce"(%[[E]])
func.func @sigma_inside() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf32>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf32>
  %s = "keir.var"() {index = 2 : i64, category = "p"} : () -> vector<1xf32>
  %c2 = "keir.constant"() {value = 2.0 : f64} : () -> vector<1xf32>
  %d = "keir.sqdist"(%x, %y) : (vector<3xf32>, vector<3xf32>) -> vector<1xf32>
  %n = "keir.neg"(%d) : (vector<1xf32>) -> vector<1xf32>
  %t = "keir.mul"(%c2, %s) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %u = "keir.mul"(%t, %s) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %a = "keir.div"(%n, %u) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  %e = "keir.exp"(%a) : (vector<1xf32>) -> vector<1xf32>
  %r = "keir.reduce"(%e) {kind = "sum", axis = 1 : i64} : (vector<1xf32>) -> vector<1xf32>
  return %r : vector<1xf32>
}

// A factor common to terms computed per pair leaves the sum: K x + y K => (x + y) K.
// CHECK-LABEL: func.func @common_factor
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK:         %[[S:.*]] = "keir.add"(%[[X]], %[[Y]])
// CHECK-NEXT:    %[[K:.*]] = "keir.exp"(%[[Y]])
// CHECK-NEXT:    %[[R:.*]] = "keir.mul"(%[[S]], %[[K]])
// CHECK-NEXT:    return %[[R]]
func.func @common_factor() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %k = "keir.exp"(%y) : (vector<1xf64>) -> vector<1xf64>
  %a = "keir.mul"(%k, %x) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %b = "keir.mul"(%y, %k) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.add"(%a, %b) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// A sum of scalars that is f(x_k, y_k) for every component k is the in-vector sum of f(x, y):
// (x0 - y0)^2 + (x1 - y1)^2 => sqdist(x, y).
// CHECK-LABEL: func.func @sum_of_components
// CHECK-NOT:     keir.elem
// CHECK:         %[[R:.*]] = "keir.sqdist"(%{{.*}}, %{{.*}}) : (vector<2xf64>, vector<2xf64>) -> vector<1xf64>
// CHECK-NEXT:    return %[[R]]
func.func @sum_of_components() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<2xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<2xf64>
  %x0 = "keir.elem"(%x) {index = 0 : i64} : (vector<2xf64>) -> vector<1xf64>
  %y0 = "keir.elem"(%y) {index = 0 : i64} : (vector<2xf64>) -> vector<1xf64>
  %x1 = "keir.elem"(%x) {index = 1 : i64} : (vector<2xf64>) -> vector<1xf64>
  %y1 = "keir.elem"(%y) {index = 1 : i64} : (vector<2xf64>) -> vector<1xf64>
  %d0 = "keir.sub"(%x0, %y0) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %d1 = "keir.sub"(%x1, %y1) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %s0 = "keir.square"(%d0) : (vector<1xf64>) -> vector<1xf64>
  %s1 = "keir.square"(%d1) : (vector<1xf64>) -> vector<1xf64>
  %r = "keir.add"(%s0, %s1) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// sum(x * y) => dot(x, y); dot(d, d) with d = x - y => sqdist(x, y); sum(b * x) => sum(x) * b.
// CHECK-LABEL: func.func @vector_reductions
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[B:.*]] = "keir.var"() {category = "j", index = 2 : i64}
// CHECK:         %[[SX:.*]] = "keir.sum"(%[[X]])
// CHECK-NEXT:    %[[BX:.*]] = "keir.mul"(%[[SX]], %[[B]])
// CHECK-NEXT:    %[[DOT:.*]] = "keir.dot"(%[[X]], %[[Y]])
// CHECK-NEXT:    %[[A:.*]] = "keir.add"(%[[BX]], %[[DOT]])
// CHECK-NEXT:    %[[D:.*]] = "keir.sqdist"(%[[X]], %[[Y]])
// CHECK-NEXT:    "keir.add"(%[[A]], %[[D]])
func.func @vector_reductions() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %b = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<1xf64>
  %m = "keir.mul"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %s = "keir.sum"(%m) : (vector<3xf64>) -> vector<1xf64>
  %d = "keir.sub"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %n = "keir.dot"(%d, %d) : (vector<3xf64>, vector<3xf64>) -> vector<1xf64>
  %bx = "keir.mul"(%b, %x) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
  %t = "keir.sum"(%bx) : (vector<3xf64>) -> vector<1xf64>
  %a = "keir.add"(%s, %n) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.add"(%a, %t) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}

// Zero pieces of a concat fold away: sum((0, 1, 0) * y) => y1; a component of an elementwise op is the
// op of components: elem(b (x - y), 2) => (x2 - y2) b.
// CHECK-LABEL: func.func @components_and_zeros
// CHECK-DAG:     %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// CHECK-DAG:     %[[Y:.*]] = "keir.var"() {category = "j", index = 1 : i64}
// CHECK-DAG:     %[[B:.*]] = "keir.var"() {category = "j", index = 2 : i64}
// CHECK-NOT:     keir.concat
// CHECK:         %[[Y1:.*]] = "keir.elem"(%[[Y]]) {index = 1 : i64}
// CHECK-NEXT:    %[[X2:.*]] = "keir.elem"(%[[X]]) {index = 2 : i64}
// CHECK-NEXT:    %[[Y2:.*]] = "keir.elem"(%[[Y]]) {index = 2 : i64}
// CHECK-NEXT:    %[[D:.*]] = "keir.sub"(%[[X2]], %[[Y2]])
// CHECK-NEXT:    %[[BD:.*]] = "keir.mul"(%[[D]], %[[B]])
// CHECK-NEXT:    "keir.add"(%[[Y1]], %[[BD]])
func.func @components_and_zeros() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<3xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<3xf64>
  %b = "keir.var"() {index = 2 : i64, category = "j"} : () -> vector<1xf64>
  %z = "keir.constant"() {value = 0.0 : f64} : () -> vector<1xf64>
  %o = "keir.constant"() {value = 1.0 : f64} : () -> vector<1xf64>
  %zo = "keir.concat"(%z, %o) : (vector<1xf64>, vector<1xf64>) -> vector<2xf64>
  %hot = "keir.concat"(%zo, %z) : (vector<2xf64>, vector<1xf64>) -> vector<3xf64>
  %m = "keir.mul"(%hot, %y) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %s = "keir.sum"(%m) : (vector<3xf64>) -> vector<1xf64>
  %d = "keir.sub"(%x, %y) : (vector<3xf64>, vector<3xf64>) -> vector<3xf64>
  %bd = "keir.mul"(%b, %d) : (vector<1xf64>, vector<3xf64>) -> vector<3xf64>
  %e = "keir.elem"(%bd) {index = 2 : i64} : (vector<3xf64>) -> vector<1xf64>
  %r = "keir.add"(%s, %e) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
