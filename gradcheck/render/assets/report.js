(function(){
/* The module tree: built from the page's JSON (#gc-tree, layout in html_tree.py) a module at a
   time, when it is opened; the filter box and the status cards search the data and build only
   the modules and rows that match. */
var data=document.getElementById('gc-tree'),tree=document.getElementById('tree');
var q=document.getElementById('q');if(!data||!tree||!q)return;
var D=JSON.parse(data.textContent),M=D.m,P=D.p,S=D.s,C=D.c,MK=D.mk,K={},keys=[],match=null,
budget=0,LIMIT=1000,qn=document.getElementById('qn');   /* rows a filter opens by itself */
D.k.forEach(function(k){K[k]=1});
function esc(s){return String(s==null?'':s).replace(/&/g,'&amp;').replace(/</g,'&lt;')
.replace(/>/g,'&gt;').replace(/"/g,'&quot;').replace(/'/g,'&#x27;')}
function cls(s){return K[s]?s:'x'}
function badge(s){return '<span class="b s-'+cls(s)+'">'+esc(s)+'</span>'}
function stack(n,total){if(!total)return '<span class="stack empty"></span>';
var stops=[],title=[],at=0;S.forEach(function(s,i){if(!n[i])return;var end=at+100*n[i]/total;
stops.push(C[i]+' '+at.toFixed(1)+'% '+end.toFixed(1)+'%');title.push(n[i]+' '+s);at=end});
return '<span class="stack" title="'+esc(title.join(', '))+
'" style="background:linear-gradient(90deg,'+stops.join(',')+')"></span>'}
function marks(t){if(!t)return '<span class="dim">–</span>';var h='',i=0,j;
while(i<t.length){for(j=i;j<t.length&&t[j]===t[i];j++);var s=MK[t[i]]||'?';
h+='<i class="t-'+cls(s)+'" title="'+esc(s)+'">'+esc(t.slice(i,j))+'</i>';i=j}
return '<span class="tl">'+h+'</span>'}
var HEAD='<table class="pt"><thead><tr><th>parameter</th><th>shape</th><th>status</th>'+
'<th>steps</th><th class="num">|grad| last</th><th class="num">Δw/w</th>'+
'<th>reached by</th><th>cause / notes</th></tr></thead><tbody>';
function row(i){var p=P[i],r=p[6],notes=(p[7]||[]).map(function(n){
return n[0]==='c'?'<code class="cc" title="'+esc(n[2])+'">'+esc(n[1])+'</code> '+esc(n[2]):
n[0]==='b'?'<span class="b s-zero">'+esc(n[1])+'</span>':'<span class="dim">'+esc(n[1])+'</span>'});
return '<tr class="p" data-i="'+i+'"><td class="pn" title="'+esc(p[0])+'">'+
esc(p[0].slice(p[0].lastIndexOf('.')+1))+'</td><td>'+esc(p[1])+'</td><td>'+badge(p[2])+
'</td><td>'+marks(p[3])+'</td><td class="num">'+esc(p[4])+'</td><td class="num">'+esc(p[5])+
'</td><td class="'+(r&&!r.length?'warn':'')+'">'+esc(r==null?'–':r.length?r.join(', '):'nothing')+
'</td><td>'+notes.join(' ')+'</td></tr>'}
function summary(i){var m=M[i],n=m[0],np=m[4];
return '<summary>'+stack(m[6],np||m[6].reduce(function(a,b){return a+b},0))+
'<span class="mn" title="'+esc(n||'<model>')+'">'+esc(n?n.slice(n.lastIndexOf('.')+1):D.model)+
'</span> <span class="cov">'+m[1]+'/'+m[2]+'</span> '+badge(m[3])+' <span class="dim">'+np+
' param'+(np===1?'':'s')+' · '+esc(m[5])+' values</span></summary>'}
/* a module's rows and sub-modules; all: everything below open too */
function inner(i,all){var m=M[i],rows=match?m[8].filter(function(k){return match.p[k]}):m[8],
h=rows.length?HEAD+rows.map(row).join('')+'</tbody></table>':'';budget-=rows.length;
m[7].forEach(function(k){if(!match||match.m[k])h+=node(k,all)});return h}
function node(i,all){var o=all||(match?match.m[i]&&budget>0:M[i][9]);
return '<details class="mod" data-i="'+i+'"'+(o?' open data-b="1"':'')+'>'+summary(i)+
'<div class="kids">'+(o?inner(i,all):'')+'</div></details>'}
function build(all){budget=LIMIT;tree.innerHTML=D.roots.map(function(r){
return match&&!match.m[r]?'':node(r,all)}).join('')}
function fill(d){if(d.hasAttribute('data-b'))return;d.setAttribute('data-b','1');budget=LIMIT;
d.lastElementChild.innerHTML=inner(+d.getAttribute('data-i'),false)}
tree.addEventListener('toggle',function(e){var d=e.target;
if(d.open&&d.classList&&d.classList.contains('mod'))fill(d)},true);
function key(i){if(keys[i]==null){var p=P[i];keys[i]=(p[0]+' s:'+p[2]+' '+(p[8]||'')).toLowerCase()}
return keys[i]}
function apply(){var t=q.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
if(!t.length){qn.textContent='';if(match){match=null;build(false)}return}
var mp=P.map(function(_,i){var k=key(i);return t.every(function(w){return k.indexOf(w)>=0})}),
mm=[];for(var i=M.length-1;i>=0;i--){var m=M[i];     /* pre-order: kids come after a module */
mm[i]=m[8].some(function(k){return mp[k]})||m[7].some(function(k){return mm[k]})}
match={p:mp,m:mm};var n=mp.filter(Boolean).length;
qn.textContent=n+' of '+P.length+' parameters match'+(n>LIMIT?' (modules past the first '+LIMIT+
' rows open when clicked, or expand all)':'');build(false)}
var timer;q.addEventListener('input',function(){clearTimeout(timer);   /* typing: wait a little */
if(q.value.trim())timer=setTimeout(apply,120);else apply()});
document.querySelectorAll('[data-filter]').forEach(function(a){a.addEventListener('click',
function(){q.value=a.getAttribute('data-filter');apply()})});
document.querySelectorAll('[data-act]').forEach(function(b){b.addEventListener('click',function(){
if(b.getAttribute('data-act')==='open')build(true);
else tree.querySelectorAll('details.mod').forEach(function(d){d.open=false})})});
build(false);
})();
