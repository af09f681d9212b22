(function(){
var q=document.getElementById('q');if(!q)return;
var rows=[].slice.call(document.querySelectorAll('#tree tr.p'));
var mods=[].slice.call(document.querySelectorAll('#tree details.mod'));
var tabs=[].slice.call(document.querySelectorAll('#tree table.pt'));
function apply(){var t=q.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
rows.forEach(function(r){var k=r.getAttribute('data-k');
r.hidden=!t.every(function(w){return k.indexOf(w)>=0})});
if(!t.length){mods.forEach(function(d){d.hidden=false});tabs.forEach(function(x){x.hidden=false});
return}
tabs.forEach(function(x){x.hidden=!x.querySelector('tr.p:not([hidden])')});
mods.forEach(function(d){var any=d.querySelector('tr.p:not([hidden])');d.hidden=!any;
if(any)d.open=true})}
q.addEventListener('input',apply);
document.querySelectorAll('[data-filter]').forEach(function(a){a.addEventListener('click',
function(){q.value=a.getAttribute('data-filter');apply()})});
document.querySelectorAll('[data-act]').forEach(function(b){b.addEventListener('click',function(){
var o=b.getAttribute('data-act')==='open';mods.forEach(function(d){d.open=o})})});
})();
