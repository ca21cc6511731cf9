// A tiny clock-animated POV-Ray scene for the end-to-end tests.
//
// A sphere orbits a box once as `clock` runs from 0 to 1; the hand of a
// "clock" face turns with it.  At 64x48 without anti-aliasing one frame
// renders in a fraction of a second:
//
//   povray +Iclock.pov +O/tmp/out/clock.png +W64 +H48 +KFI1 +KFF6 +SF1 +EF6 -D -V
#version 3.7;

global_settings { assumed_gamma 1.0 }

camera {
  location <0, 3, -6>
  look_at <0, 0.5, 0>
  angle 50
}

light_source { <4, 8, -6> color rgb 1 }
background { color rgb <0.05, 0.05, 0.1> }

plane { y, 0 pigment { checker color rgb 0.8 color rgb 0.3 } }

box {
  <-0.5, 0, -0.5>, <0.5, 1, 0.5>
  pigment { color rgb <0.2, 0.4, 0.9> }
}

sphere {
  <2, 0.5, 0>, 0.4
  pigment { color rgb <0.9, 0.3, 0.2> }
  rotate y * 360 * clock
}

// The hand: frame_number is printed into the scene so each frame differs visibly.
cylinder {
  <0, 1.01, 0>, <0, 1.01, 0.45>, 0.05
  pigment { color rgb 1 }
  rotate y * 360 * clock
}
