* Spin-summed tree-level |M|^2 of e-(p1) e+(p2) -> gamma* -> mu-(k1) mu+(k2) gamma(k)
* for zprime (src/zprime/generators/_mumugamma_me_generated.py is generated from this file by
* tools/generate_mumugamma_me.py; run that script, not this one, to regenerate).
*
* Amplitude (vertices -i e gamma^mu; the couplings e^6, the spin average 1/4 and the sum
* of the three parts are applied in zprime.generators.mumu). With the photon index nu
* (eps*_nu(k)) and S(p) = (psl + m)/(p^2 - m^2) without the factors i, every diagram carries
* the same overall factor (-ie)^3 i (-i), so the four diagrams add with a plus sign:
*   ISR: vbar(p2) [ gamma^nu S(k - p2) gamma^al + gamma^al S(p1 - k) gamma^nu ] u(p1)
*        (1/SP) ubar(k1) gamma_al v(k2),
*        S(k - p2) = (ksl - p2sl)/(-2 A2),  S(p1 - k) = (p1sl - ksl)/(-2 A1)
*   FSR: vbar(p2) gamma^al u(p1) (1/s)
*        ubar(k1) [ gamma^nu S(k1 + k) gamma_al + gamma_al S(-k2 - k) gamma^nu ] v(k2),
*        S(k1 + k) = (k1sl + ksl + m)/(2 B1),  S(-k2 - k) = (-k2sl - ksl + m)/(2 B2)
* Spin sums: massless electrons, muon mass m kept, photon polarisation sum -g.
* TI = |ISR|^2, TF = |FSR|^2, TX = 2 Re(ISR FSR*); |M|^2 summed = e^6 (TI + TF + TX).
* WI, WF, WT: the same with -g replaced by k k (the Ward identity of the real photon, for the
* ISR part, the FSR part and the sum), multiplied by all denominators and rewritten in the
* five independent invariants s, p1k1, p1k2, p2k1, p2k2: each must vanish identically.
*
* Invariants left in TI, TF, TX: s = 2 p1.p2, A1 = p1.k, A2 = p2.k, B1 = k1.k, B2 = k2.k,
* SP = (k1 + k2)^2, p1k1 = p1.k1, p1k2, p2k1, p2k2, m2 = m^2 (not independent: the caller
* passes the dot products of the actual momenta).
#-
Off Statistics;
Symbols m, m2, s, SP, A1, A2, B1, B2, p1k1, p1k2, p2k1, p2k2;
Vectors p1, p2, k1, k2, k;
Indices al, be, nu, rho;

#ifndef `OUTFILE'
  #define OUTFILE "mumugamma_me.out"
#endif

* amplitude parts (line 1: electrons, line 2: muons) and their Dirac conjugates
#define AI "( g_(1,nu)*(g_(1,k)-g_(1,p2))*g_(1,al)*(-1/2)*A2^-1
          + g_(1,al)*(g_(1,p1)-g_(1,k))*g_(1,nu)*(-1/2)*A1^-1 ) * g_(2,al) * SP^-1"
#define AF "g_(1,al) * s^-1 * ( g_(2,nu)*(g_(2,k1)+g_(2,k)+m*gi_(2))*g_(2,al)*(1/2)*B1^-1
          + g_(2,al)*(-g_(2,k2)-g_(2,k)+m*gi_(2))*g_(2,nu)*(1/2)*B2^-1 )"
#define BI "( g_(1,be)*(g_(1,k)-g_(1,p2))*g_(1,rho)*(-1/2)*A2^-1
          + g_(1,rho)*(g_(1,p1)-g_(1,k))*g_(1,be)*(-1/2)*A1^-1 ) * g_(2,be) * SP^-1"
#define BF "g_(1,be) * s^-1 * ( g_(2,be)*(g_(2,k1)+g_(2,k)+m*gi_(2))*g_(2,rho)*(1/2)*B1^-1
          + g_(2,rho)*(-g_(2,k2)-g_(2,k)+m*gi_(2))*g_(2,be)*(1/2)*B2^-1 )"
#define L1 "g_(1,p2) * (g_(2,k1)+m*gi_(2))"
#define R1 "g_(1,p1) * (g_(2,k2)-m*gi_(2))"

Local TI = `L1' * `AI' * `R1' * `BI' * (-d_(nu,rho));
Local TF = `L1' * `AF' * `R1' * `BF' * (-d_(nu,rho));
Local TX = `L1' * `AI' * `R1' * `BF' * (-d_(nu,rho))
         + `L1' * `AF' * `R1' * `BI' * (-d_(nu,rho));
Local WI = `L1' * `AI' * `R1' * `BI' * k(nu)*k(rho);
Local WF = `L1' * `AF' * `R1' * `BF' * k(nu)*k(rho);
Local WT = `L1' * (`AI' + `AF') * `R1' * (`BI' + `BF') * k(nu)*k(rho);

trace4,1;
trace4,2;
contract;
id p1.p1 = 0;
id p2.p2 = 0;
id k.k = 0;
id k1.k1 = m^2;
id k2.k2 = m^2;
id p1.p2 = s/2;
id p1.k = A1;
id p2.k = A2;
id k1.k = B1;
id k2.k = B2;
id k1.k2 = (SP - 2*m^2)/2;
id p1.k1 = p1k1;
id p1.k2 = p1k2;
id p2.k1 = p2k1;
id p2.k2 = p2k2;
repeat id m^2 = m2;
.sort

* Ward identities: clear the denominators, then use momentum conservation
* p1 + p2 = k1 + k2 + k to go to the independent invariants
Skip TI, TF, TX;
Multiply A1^2*A2^2*B1^2*B2^2*SP^2*s^2;
.sort
Skip TI, TF, TX;
id A1 = s/2 - p1k1 - p1k2;
id A2 = s/2 - p2k1 - p2k2;
id SP = 2*(p1k1 + p1k2 + p2k1 + p2k2) - s;
id B1 = p1k1 + p2k1 - m2 - (p1k1 + p1k2 + p2k1 + p2k2 - s/2 - m2);
id B2 = p1k2 + p2k2 - m2 - (p1k1 + p1k2 + p2k1 + p2k2 - s/2 - m2);
.sort
Skip TI, TF, TX;
Multiply A1^-2*A2^-2*B1^-2*B2^-2*SP^-2*s^-2;
.sort

#write <`OUTFILE'> "* Ward identities (must be 0)"
#write <`OUTFILE'> "WI = %e", WI
#write <`OUTFILE'> "WF = %e", WF
#write <`OUTFILE'> "WT = %e", WT
Drop WI, WF, WT;
.sort

Format O3;
Format C;
#optimize TI
#write <`OUTFILE'> "* optimized TI"
#write <`OUTFILE'> "%O"
#write <`OUTFILE'> "TI = %e", TI
#clearoptimize
.sort
#optimize TF
#write <`OUTFILE'> "* optimized TF"
#write <`OUTFILE'> "%O"
#write <`OUTFILE'> "TF = %e", TF
#clearoptimize
.sort
#optimize TX
#write <`OUTFILE'> "* optimized TX"
#write <`OUTFILE'> "%O"
#write <`OUTFILE'> "TX = %e", TX
.end
