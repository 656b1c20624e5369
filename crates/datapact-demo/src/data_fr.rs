//! French vocabulary and templates (same format as `data_en.rs`).
//!
//! Punctuation `! ? : ;` is written glued to the previous word: the styler
//! adds the author's spacing (U+202F, U+00A0, a plain space, or none).

pub(crate) const FR: &str = r#"
# common
open = Franchement,|Bon,|Avis impopulaire:|Petit rappel:|Sans mentir,|Question sérieuse:|Bref,|Alors voilà:|Confession:|Petite victoire:|Fun fact:|Mise à jour:|Je dis ça, je dis rien:
react = J'adore.|Tant pis; on recommence.|Bon; on verra bien.|Quelle époque.|Je n'en peux plus.|Plus jamais.|Je recommande à 100%.|À l'aide.|Ça valait le coup.|Pas mécontent.|On verra bien.|Classique.|Incroyable.|J'abandonne.|La vie est belle.|Dingue.|Allez comprendre.|Rien à redire.|Hors de question.|Ça m'apprendra.|Aucun regret.
closer = Bref.|Des avis?|C'est moi ou...|Allez, au boulot.|J'ai tort?|La suite bientôt.|C'est tout, c'est le tweet.|Détails en dessous.|Thread plus tard, peut-être.|Vous en pensez quoi?|Voilà voilà.
feel = ravi|épuisé|agacé|curieux|nostalgique|reconnaissant|perplexe|impressionné|sceptique|surexcité|soulagé|stressé|furieux|fier de moi|fatigué|inspiré
day = lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|ce matin|ce soir|hier|le week-end dernier|à midi|cet après-midi
friend = ma sœur|mon coloc|une collègue|mon voisin|mon père|ma meilleure amie|un inconnu dans le métro|mon fils|le boulanger|mon proprio|ma mère|ma compagne|un ancien camarade|ma dentiste|ma belle-mère
intens = vraiment|tellement|carrément|franchement|étonnamment|clairement|grave|plutôt|super|profondément|sérieusement
adj_wild = délirant|chaotique|n'importe quoi|sublime|épuisant|absurde|surréaliste|fou
city = Paris|Lyon|Marseille|Toulouse|Bordeaux|Lille|Nantes|Strasbourg|Montpellier|Rennes|Nice|Grenoble|Montréal|Québec|Bruxelles|Genève|Lausanne|Dijon|Brest|Clermont-Ferrand|Rouen|Tours|Annecy|Liège
month = janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre
dur = deux heures|trois jours|tout l'après-midi|45 minutes|un sprint entier|toute la nuit|une demi-journée|une semaine entière|vingt minutes
misc_tail = {closer}|{react}|Photos bientôt.|La suite au prochain épisode.

# tech
> J'ai passé {dur} à traquer {bug} dans notre {svc} en {stack}. Le correctif tenait en une ligne... {react}
> {open} {stack} est {intens} {good} pour {usecase}, mais {pain}, quelle plaie.
> Notre {svc} est tombé {day} à cause d'{bug}. Conclusion du post-mortem: "{excuse}"
> On vient de livrer {feature} en prod - {feeling_line}.
> Si ton {svc} a besoin de {n} {infra} pour servir {big} requêtes par jour, ce n'est pas du passage à l'échelle, c'est {badthing}.
> Migration terminée: notre {svc} est passé de {stack} à {stack}. Compilation: {n} minutes avant, {n} secondes maintenant.
> Je lis les notes de version de {stack}: {feature}, ça a l'air {good}.
> Livraison du jour: {gadget}. Premières impressions: {impr}.
> Qui d'autre se bat contre {pain} aujourd'hui?
> Séance de pair programming avec {friend}, qui n'a jamais touché à {stack}. Étonnamment {good}.
> Rappel: "{maxim}" reste le meilleur conseil en informatique.
> Quelqu'un aurait un bon tuto sur {concept}? C'est pour un {svc} en {stack}.
> Notre CI prend {n} minutes. J'ai le temps de faire {dish_small} pendant ce temps.
> Petit script en {stack} pour {automate}: {dur} de gagnées.
> Commentaire de revue de code du jour: "{review_comment}"
> {pct}% de couverture de tests et {bug} est quand même passé. Évidemment.
> Je teste {tool} cette semaine. Pour l'instant, {impr}.
> On recrute un·e dev {stack} qui maîtrise {concept}. Télétravail possible, salaire {salary}.
bug = une race condition|une fuite mémoire|une erreur d'indice|un interblocage|un bug de fuseau horaire|un bug d'encodage|un pointeur nul|un problème de cache|un test instable|une mauvaise config DNS|un dépassement d'entier|un certificat expiré|une tempête de retries|un souci d'accents mal encodés
stack = Rust|Go|Python|TypeScript|Kotlin|Elixir|Java|Swift|Postgres|SQLite|Kubernetes|Terraform|React|Vue|Django|Symfony|OCaml|Haskell|Zig|C++|PHP|Scala
svc = service de facturation|module d'authentification|moteur de recherche|appli mobile|pipeline de données|gateway d'API|cron|monolithe|moteur de recommandation|tunnel de paiement|tableau de bord|worker d'ingestion
good = solide|sous-coté|agréable|élégant|ennuyeux dans le bon sens|rapide|fiable|malin|mature|ergonomique|bien documenté
usecase = les outils en ligne de commande|le backend|l'embarqué|le traitement de données|le prototypage|le scraping|les moteurs de jeu|les débutants|l'analyse de logs|la domotique
pain = le borrow checker|l'enfer des dépendances|le temps de compilation|l'indentation YAML|la dette technique|les astreintes|la réunionite|le changement de contexte|l'outillage JavaScript|les conflits de merge
excuse = ça marchait sur ma machine|on pensait que le retry suffirait|personne ne surveillait l'alerte|le stagiaire avait accès à la prod|la config venait de la préprod|c'est toujours le DNS|le cache nous a menti
feature = le mode sombre|la synchro hors ligne|la double authentification|le nouveau parcours d'inscription|l'export en streaming|la compilation incrémentale|la recherche plein texte|la limitation de débit|la réécriture du parseur|les journaux d'audit
feeling_line = zéro incident pour l'instant|on croise les doigts|pitié, ne m'appelez pas|café bien mérité|voyons ce qui casse|tous les voyants sont au vert
infra = serveurs|conteneurs|répartiteurs de charge|bases de données|files d'attente|microservices|GPU
badthing = un feu de joie|une prise d'otages|un appel au secours|une facture|un loisir très coûteux
gadget = un nouveau portable|un clavier mécanique|une liseuse|un téléphone|un bureau assis-debout|un écran 4K|un casque|un routeur|une montre connectée
impr = clavier génial, batterie moyenne|superbe écran, webcam affreuse|plus lourd que prévu|rapide, silencieux, hors de prix|franchement parfait|la charnière fait cheap|prometteur mais buggé
maxim = d'abord que ça marche, ensuite que ce soit juste, enfin que ce soit rapide|le cloud, c'est l'ordinateur de quelqu'un d'autre|l'optimisation prématurée est la racine de tous les maux|nommer les choses, c'est dur|supprime plus de code que tu n'en écris
concept = le hachage cohérent|les CRDT|les tests par propriétés|les runtimes async|les migrations sans interruption|l'observabilité|l'ordonnancement mémoire|la recherche vectorielle|le ramasse-miettes|les clés d'idempotence
automate = renommer mes photos|trier mes factures|vérifier les retards SNCF|archiver les vieux tickets|générer les notes de version
review_comment = nit: espace en fin de ligne|pourquoi un singleton?|ça marche mais je déteste|LGTM, j'ai pas lu|on peut éviter?|qui t'a fait du mal?
tool = Neovim|Zed|Helix|VS Code|Emacs|JetBrains|tmux|Nix|htmx
salary = selon profil|55 k€|70 000 €|"attractif"|non communiqué, hélas
tags = Rust|Python|DevOps|opensource|dev|programmation|IA|cybersécurité|webdev|TechFR

# football
> Quel match! {team} {score} {team}. {player} a été {perf} ce soir.
> Supporters de {team}, comment ça va après {result}?
> {player} à {team} pour {fee}? Ce mercato est {adj_wild}.
> L'arbitre siffle penalty pour ÇA? {react}
> Match regardé au {bar} avec {friend}. {n} buts, {n} cartons jaunes, zéro regret.
> Coup d'envoi à {time}. Mon prono: {team} {score}.
> Le milieu de {team} est {perf2}. Appelez {manager}.
> Nouvelles du foot à sept: on a perdu {score} et je me suis claqué l'ischio. Le foot amateur dans toute sa splendeur.
> L'ambiance au {stadium} ce soir - {atmos}.
> Le but de {player} à {distance} mètres, je l'ai regardé {n} fois.
> La VAR a mis {n} minutes pour décider ça. {react}
> Abonnement renouvelé: {price}. Ce qu'on ne ferait pas pour {team}...
team = l'OM|le PSG|l'OL|Lens|Lille|Monaco|Rennes|Nantes|Nice|Strasbourg|Brest|Toulouse|Saint-Étienne|Bordeaux|Auxerre|le Stade de Reims|le Barça|le Real|le Bayern|l'Inter|la Juve|le CF Montréal
player = Mbappé|Dembélé|Griezmann|Kolo Muani|Tchouaméni|Camavinga|Saliba|Koundé|Maignan|Thuram|Barcola|Cherki|Olise|Zaïre-Emery|Payet|Benzema|Giroud|Aubameyang
perf = injouable|invisible|partout|magistral|clinique|transparent|sur une autre planète|maladroit|immense
perf2 = un chantier|une leçon de football|trop lent|complètement dépassé|étonnamment solide|sans leader|en mode survie
result = cette égalisation à la dernière minute|cette humiliation|ce hold-up|ce nul triste|cette remontada|cette séance de tirs au but|ce derby perdu|cette élimination en coupe
fee = 60 M€|100 M€|zéro euro, il était libre|35 M€ plus bonus|un montant non divulgué|un prêt avec option d'achat
bar = PMU du coin|bar des sports|café en bas de chez moi|pub irlandais|Balto
manager = Deschamps|Luis Enrique|De Zerbi|Habib Beye|Fonseca|Genesio|Guardiola|un psy|ma grand-mère
stadium = Vélodrome|Parc des Princes|Groupama Stadium|stade Bollaert|stade Geoffroy-Guichard|stade de la Beaujoire|Roazhon Park|stade Francis-Le Blé
atmos = électrique|plus calme qu'une bibliothèque|des frissons du début à la fin|bruyante, humide et merveilleuse|du pur bonheur
distance = 25|30|35|40|45
tags = Ligue1|OMPSG|TeamOM|PSG|foot|mercato|UCL|CDF|AllezLesBleus

# cooking
> Ce soir: {dish} avec {ingr} et {ingr}. {verdict}
> Astuce: une pincée de {spice} dans votre {dish}. Vous me remercierez.
> Ma {dough} a enfin {dough_result} après {n} essais. {react}
> Déj du jour: {dish} à {price}. {verdict2}
> C'est bizarre de mettre {ingr} dans {dish}? C'est pour {friend}.
> La règle de ma grand-mère pour {dish}: "{grandma}"
> Marché du dimanche: {ingr}, {ingr}, {ingr} et beaucoup trop de {fruit}.
> Je cuisine {dish} pour {n} personnes {day}. Souhaitez-moi bonne chance...
> Le secret d'un bon {dish}? {secret}. Personne ne me croit.
> Batch cooking: {n} portions de {dish} et {dessert} pour le moral.
> Four préchauffé à {oven}, {dessert} enfourné, on croise les doigts.
dish = le bœuf bourguignon|la blanquette de veau|le gratin dauphinois|la ratatouille|la quiche lorraine|le cassoulet|la tartiflette|le couscous|la soupe à l'oignon|le hachis parmentier|la pissaladière|le poulet basquaise|les crêpes|le clafoutis|la pâte à choux|le tajine|les lentilles du Puy|le risotto aux cèpes|la bouillabaisse|le croque-monsieur|le pot-au-feu|la brandade|les moules-frites|la fondue savoyarde
dish_small = un pot-au-feu entier|trois baguettes|une tarte Tatin|un gratin complet
ingr = l'ail|le piment d'Espelette|le beurre noisette|les poireaux|les pois chiches|les anchois|le basilic frais|le gingembre|le tahini|la patate douce|le comté|la crème fraîche|le zeste de citron|le chorizo|les épinards|la feta|les échalotes|les câpres|l'aubergine|le reblochon|le thym|le lard fumé|les girolles|l'estragon
spice = cumin|muscade|sumac|cannelle|piment de Cayenne|za'atar|safran|cardamome|graines de fenouil|badiane|curcuma|ras-el-hanout
dough = pâte à pain|focaccia|pâte feuilletée|brioche|pâte à pizza|pâte brisée|pâte au levain
dough_result = levé correctement|été croustillante|tenu sans s'effondrer|eu une belle mie|eu du goût|ressemblé à la photo
verdict = Une tuerie.|À refaire.|Mangeable, de justesse.|Les enfants ont tout mangé, c'est un miracle.|Digne d'un resto, modestie à part.|Trop salé, mais bon quand même.|Le détecteur de fumée a validé.
verdict2 = Bonne affaire.|Pas donné.|Moins cher que de le faire moi-même.|Du vol.|Honnête.
grandma = un verre de vin pour la casserole, deux pour la cuisinière|on ne mesure jamais l'ail|quand ça sent bon, c'est prêt|la patience, c'est l'ingrédient principal|le beurre répare tout
fruit = prunes|fraises|abricots|figues|myrtilles|poires|rhubarbe|courgettes|tomates|mirabelles|coings|cerises
secret = plus de beurre|le temps|une poêle bien chaude|bien saler l'eau|le laisser reposer une nuit|ignorer la recette
dessert = un crumble|un fraisier|une tarte Tatin|un far breton|un moelleux au chocolat|une île flottante|un paris-brest
oven = 180 °C|200 °C|thermostat 6|220°C|180°C
tags = cuisine|recette|faitmaison|pâtisserie|gastronomie|miam|végétarien|dîner

# weather
> {temp} et {wx} à {city} aujourd'hui. {wx_react}
> La météo annonce {wx2} toute la semaine. Je suis {feel}.
> Surpris par {wx_event} en allant au boulot - {wx_aftermath}.
> Pourquoi il fait {temp} en {month}? Le climat est {adj_wild}.
> Le coucher de soleil sur {city} ce soir, c'était irréel. Sans filtre.
> Couches de vêtements aujourd'hui: {n}. Parapluies perdus cette année: {n}. Vivre à {city}, c'est {wx_life}.
> Vigilance {warning} pour {wx_event}. {react}
> {temp} ce matin; le pull est ressorti.
> Premier matin {season_word} de l'année et {garden_thing} est {garden_state}.
wx = grand soleil|ciel gris|crachin|brouillard|grand vent|temps lourd|froid glacial|orage|ciel bleu|pluie fine|neige|grisaille
wx2 = de la pluie|du soleil|du vent|de la neige|des orages|de la grisaille|de la canicule|du brouillard
wx_event = la grêle|une averse|une pluie battante|la canicule|le verglas|un orage|une tempête|le mistral
wx_aftermath = trempé jusqu'aux os|chaussettes fichues|parapluie détruit|coiffure ruinée|aucun regret|j'en ris maintenant
wx_react = Temps parfait pour courir.|Plaid et thé.|Apparemment, c'est le temps des shorts.|Le jardin en avait besoin.|Mon chat refuse de sortir.|Crème solaire obligatoire.|Chauffage allumé, culpabilité éteinte.
wx_life = formateur|un travail à plein temps|une épreuve|plutôt sympa|beaucoup
warning = jaune|orange|rouge
season_word = de gel|d'automne|de printemps|brumeux|ensoleillé
garden_thing = la pelouse|le pare-brise|le balcon|le potager|la terrasse
garden_state = toute blanche|trempée|magnifique|un marécage|couverte de feuilles
tags = météo|canicule|pluie|orage|neige|climat|couchédesoleil|vigilanceorange

# travel
> Atterri à {dest} après {n} heures de vol. Premier arrêt: {first_stop}.
> Le train de {city} à {dest}: {train}. {train_verdict}
> Pépite à {dest}: {gem}. Ne le dites à personne.
> Je fais ma valise pour {dest} comme si j'y déménageais. {n} paires de chaussures pour {n} jours...
> Contrôle des passeports à {airport}: {dur}. {react}
> {dest} réservé pour {month}. Vos bonnes adresses sont les bienvenues!
> Auberge à {dest}: {price} la nuit, {hostel}.
> Valise perdue à {airport}. Elle est à {dest}, en meilleures vacances que moi.
> Randonnée au lever du soleil au-dessus de {dest} - {view}.
> Conseil pour {dest}: {tip}.
dest = Lisbonne|Kyoto|Marrakech|Reykjavik|Mexico|Naples|Vienne|Copenhague|Hanoï|Istanbul|Le Cap|Buenos Aires|Séoul|Porto|Édimbourg|Montréal|Barcelone|Tbilissi|Dakar|Ljubljana|Séville|Cracovie|Bologne|Biarritz|Ajaccio|Étretat
first_stop = une boulangerie|la vieille ville|un petit resto de nouilles|le port|le marché aux puces|un bar sur les toits|le jardin botanique|la cathédrale|un musée minuscule
train = fluide et magnifique|deux heures de retard|bondé comme jamais|étonnamment confortable|un sauna roulant|TGV à l'heure, miracle
train_verdict = Je recommande.|À refaire.|Jamais plus.|La prochaine fois, je marche.
gem = un bar de jazz caché derrière une laverie|une librairie avec un chat|le belvédère au lever du soleil|une cantine familiale|une visite guidée gratuite|une ligne de tram avec la meilleure vue|des bains publics de 1890
airport = Roissy|Orly|Saint-Exupéry|Nantes-Atlantique|Mérignac|Heathrow|Schiphol|Montréal-Trudeau
hostel = petit-déj inclus et dortoir très bruyant|propre et calme|douches douteuses mais super ambiance|un hamac sur le toit
view = chaque ampoule en valait la peine|une mer de nuages|presque spirituel|mes mollets pleurent
tip = apprenez cinq mots de la langue|évitez la place principale|mangez là où mangent les chauffeurs de taxi|prenez le pass transport à la semaine|partez hors saison
tags = voyage|vacances|roadtrip|randonnée|slowtravel|backpack|weekend|tourisme

# books
> Je viens de finir {book_by}. {book_verdict}
book_by = "L'Étranger" de Camus|"Madame Bovary" de Flaubert|"Les Années" d'Annie Ernaux|"Chanson douce" de Leïla Slimani|"L'Anomalie" d'Hervé Le Tellier|"Vernon Subutex" de Virginie Despentes|"Bonjour tristesse" de Sagan|"La Vie devant soi" de Romain Gary|"Germinal" de Zola|"Jacaranda" de Gaël Faye|"Veiller sur elle" de Jean-Baptiste Andrea|"Les Choses" de Perec|"L'Amant" de Marguerite Duras|"Petit Pays" de Gaël Faye
> En ce moment je lis {book_adj} {genre} et je n'arrive pas à le lâcher.
> {writer}, c'est {intens} le meilleur {writer_kind} des cinquante dernières années. Venez vous battre.
> Le club de lecture a choisi "{book}" pour {month}. Audacieux.
> Ma pile à lire fait maintenant {n} livres. J'en achète d'autres quand même.
> Je relis "{book}" et je remarque {notice}.
> Razzia à la médiathèque: {n} livres, zéro pénalité. La bibliothécaire me connaît par mon prénom.
> Commencé "{book}" dans le RER et raté mon arrêt. {react}
book = L'Étranger|Madame Bovary|Les Misérables|Le Petit Prince|La Peste|Les Années|Chanson douce|L'Anomalie|Vernon Subutex|Le Rouge et le Noir|Bonjour tristesse|Du côté de chez Swann|La Vie devant soi|Germinal|L'Amie prodigieuse|Le Mage du Kremlin|Veiller sur elle|Jacaranda|Les Choses|Voyage au bout de la nuit
writer = Annie Ernaux|Albert Camus|Gustave Flaubert|Victor Hugo|Leïla Slimani|Hervé Le Tellier|Virginie Despentes|Stendhal|Françoise Sagan|Marcel Proust|Romain Gary|Émile Zola|Marguerite Duras|Gaël Faye|Jean-Baptiste Andrea|Georges Perec
book_verdict = Bouleversant. Cinq étoiles.|Belle plume, milieu un peu mou.|Surcoté, désolé.|Il faut que je m'allonge.|Le dernier chapitre m'a achevé.|Trois étoiles, belle fin.|Déjà un de mes préférés.
book_adj = un|un drôle de|un énorme|un court mais brutal|un délicieux|un très inquiétant|un étonnamment drôle
genre = polar|roman de fantasy|saga familiale|récit autobiographique|space opera|thriller|roman historique|recueil d'essais|roman graphique|recueil de nouvelles|cosy mystery
writer_kind = romancier|essayiste|nouvelliste|poète|auteur de polars
notice = tous les indices semés|à quel point c'est drôle|l'âge du narrateur|la météo comme personnage|tout ce que j'avais raté la première fois
tags = lecture|livres|bookstagram|rentréelittéraire|BD|polar|médiathèque|PAL

# music
> Impossible d'arrêter d'écouter {album_by}. {music_verdict}
album_by = Racine carrée de Stromae|Brol d'Angèle|Chaleur humaine de Christine and the Queens|Discovery de Daft Punk|Nakamura d'Aya Nakamura|Civilisation d'Orelsan|Brûler le feu de Juliette Armanet|Deux frères de PNL|La Symphonie des éclairs de Zaho de Sagazan|Cœur de Clara Luciani|Moon Safari d'Air|Histoire de Melody Nelson de Gainsbourg|Les Failles de Pomme|Dans la légende de PNL|Cross de Justice
> Vu {artist} en concert à {venue} hier soir. {concert}
> Avis tranché: la meilleure période de {artist}, c'est {era}.
> J'apprends {instrument} à {age} ans. Mes voisins me détestent.
> Mon bilan Spotify dit que j'ai écouté {artist} pendant {big} minutes. Aucune question.
> Butin chez le disquaire: {n} vinyles pour {price}. {react}
> Places pour {artist} à {venue}: {price}. Avec l'inflation?
> Quelqu'un écoute {artist} sans écouteurs dans le bus et franchement, {bus_music}.
artist = Stromae|Angèle|Christine and the Queens|Daft Punk|Aya Nakamura|Orelsan|Juliette Armanet|PNL|Pomme|Gaël Faye|Air|Justice|Clara Luciani|Jul|Zaho de Sagazan|Phoenix|Vianney|Barbara|Gainsbourg|Françoise Hardy|Bigflo et Oli|Hoshi
venue = l'Olympia|Bercy|la Cigale|les Vieilles Charrues|Rock en Seine|un petit bar de Belleville|la Route du Rock|le Zénith|les Francofolies|l'Astrolabe
concert = Plus de voix. Ça valait le coup.|Meilleur concert de ma vie.|Son brouillon mais ambiance parfaite.|Ils ont joué les raretés!|Trop de téléphones en l'air.|J'ai pleuré au rappel.
era = les débuts|la période expérimentale|le retour|le premier album, évidemment|les albums live
instrument = le violoncelle|la basse|la batterie|le piano|le ukulélé|le saxophone|les synthés|le violon|l'accordéon
age = 34|41|29|52|60|38
music_verdict = Tout est génial.|L'album de l'année, sans discussion.|Il grandit à chaque écoute.|Je pleure encore dans le bus.|Parfait pour les matins pluvieux.|La face B est parfaite.
bus_music = ça passe|c'est un crime|je chante avec|je respecte
tags = musique|NowPlaying|vinyle|concert|festival|chanson|rapfr|nouveautés

# city
> Le {transport} était {delay} encore ce matin. {react}
> Nouvelle {shop} {street}. {shop_verdict}
> Un T2 à {city}, c'est maintenant {rent} par mois. {rent_react}
> Entendu dans le {transport}: "{overheard}"
> Quelqu'un a laissé {object} sur le trottoir en bas de chez moi avec un mot: "{note}".
> {city} en {season}, c'est {city_mood}.
> La mairie a enfin réparé {street_thing} {street}. Seulement {years} ans d'attente.
> Le {transport} est {delay}; je finis à pied.
> Un renard dans la cour à {time}, qui me fixe comme si je lui devais de l'argent.
transport = bus|métro|tram|RER|TER|Vélib'|Transilien|bus de nuit
delay = en retard de 20 minutes|supprimé|bondé|à l'heure pour une fois|bloqué dans un tunnel|dévié sans raison
shop = boulangerie|épicerie fine|cantine coréenne|librairie|salle d'escalade|cave à vin|boutique de vinyles|laverie|friperie|fromagerie
street = dans ma rue|rue de la République|près de la gare|sur la place du marché|sur le quai|avenue Jean-Jaurès|au coin de la rue
shop_verdict = Déjà une file jusqu'au coin de la rue.|Le croissant à 2 €, on est foutus.|Équipe adorable.|Gentrification en accéléré.|J'y serai tous les jours.
rent = 1 400 €|1 650 €|2 100 €|980 €|1 200 €|1 850 €
rent_react = Super.|J'habite dans un placard.|Je pars vivre sur une péniche.|À l'aide.|Retour chez mes parents, donc.
overheard = je ne suis pas perdu, j'explore|elle est végane mais seulement en semaine|mon psy dit que je dois arrêter de lui écrire|c'est bien l'arrêt pour le zoo?|c'est le pigeon qui a commencé|mais qui mange une raclette en août?
object = un canapé|un frigo|un carton de livres|un rocking-chair|une roue de vélo|une lampe|un miroir|une fougère|une machine à écrire
note = à donner|marche à peu près|adoptez-moi|sûrement hanté|pas au micro-ondes
season = été|hiver|automne|août|décembre|plein mois d'août
city_mood = magique|le chaos|le meilleur endroit du monde|beaucoup, honnêtement|insupportable et j'adore
street_thing = le nid-de-poule|le lampadaire|le banc|le passage piéton|la piste cyclable
years = 2|3|5|7|11
tags = Paris|Lyon|Marseille|RATP|vélotaf|urbanisme|loyer|quartier

# work
> {n} réunions aujourd'hui et je suis {feel}. {meeting_react}
> Mon manager: "{mgr_quote}" Moi: {me_react}
> Jour {n} dans le nouveau job. {newjob}
> En congés jusqu'à {weekday}. Ne me contactez pas au sujet {work_thing}.
> Conseil télétravail: {remote_tip}.
> Entretien annuel: {review}. Augmentation: {raise}.
> Entretien pour un poste de {role} et on m'a demandé {interview_q}. {react}
> {big} mails non lus. Je déclare la faillite de ma boîte de réception.
> La machine à café du bureau est en panne et la productivité a chuté de {pct}%.
meeting_react = Ça aurait pu être un mail.|Trois slides; deux heures.|Au moins il y avait des croissants.|Caméra coupée, évidemment.|On a décidé de planifier une autre réunion.
mgr_quote = on se fait un point rapide?|on en reparle en off|tu peux porter le sujet?|ici on est une famille|petit service...|comme indiqué dans mon dernier mail
me_react = *met à jour son CV*|bien sûr!|je suis en congés|*quitte la visio*|avec plaisir (non)
newjob = Je ne sais toujours pas où sont les toilettes.|Déjà corrigé un bug en prod.|Tout le monde est adorable.|Toujours pas de PC.|On m'a donné {n} docs d'onboarding.
weekday = lundi|mardi|mercredi|jeudi|vendredi|la semaine prochaine|la rentrée
work_thing = du bilan trimestriel|des synergies|de la roadmap|des tableurs|des OKR|de la réorg
remote_tip = habillez-vous, chaussures comprises|déjeunez loin de l'écran|un deuxième écran change tout|faites le tour du pâté de maisons à 9 h comme faux trajet|coupez les notifs après 18 h
review = correct|super|bizarre|étonnamment bien|comme prévu
raise = 2%|une soirée pizza|un nouveau titre|une poignée de main|aucune, mais de la "visibilité"
role = développeuse senior|chef de produit|data analyst|designer|responsable marketing|infirmier|professeure|comptable
interview_q = mon plus grand défaut|où je me vois dans cinq ans|d'inverser une liste chaînée|un échec dont je suis fier|pourquoi les plaques d'égout sont rondes
tags = travail|télétravail|recrutement|emploi|carrière|management|lundi|productivité

# science
> Nouvelle étude: {finding}. {sci_react}
> {pct}% des {sci_subject} {sci_fact}. La nature est {adj_sci}.
> Regardé le lancement {launch} {day}. {launch_react}
> Le télescope James Webb vient {jwst}. {react}
> Rappel: {sci_remind}.
> {dur} au labo et {experiment} a encore raté. C'est ça, la science!
> Ma fille m'a demandé pourquoi {kid_q} et j'ai dû chercher. {react}
finding = les pieuvres rêveraient en couleur|les abeilles savent compter jusqu'à quatre|des microplastiques dans l'eau des nuages|un nouvel antibiotique issu de bactéries du sol|les tardigrades survivent dans l'espace|les corbeaux reconnaissent les visages|le sommeil nettoie le cerveau|les baleines ont des accents régionaux
sci_react = Fascinant.|Je lis le preprint.|Échantillon de douze personnes, on se calme.|Et la relecture par les pairs?|Voilà pourquoi il faut financer la recherche fondamentale.
sci_subject = espèces marines|gènes de notre corps|étoiles de la galaxie|espèces d'insectes|microbes des abysses|exoplanètes connues
sci_fact = restent un mystère|n'ont pas encore de nom|échappent encore aux scientifiques|brillent dans le noir|n'ont jamais été observés de près, paraît-il
adj_sci = fascinante|folle|humble|magnifique|terrifiante
launch = d'Ariane 6|de Falcon 9|d'Artemis|de Starship|de Soyuz|de Vega-C
launch_react = Des frissons.|Ça a explosé, mais de façon instructive.|Atterrissage parfait.|Encore reporté.|Les enfants ont applaudi.
jwst = de repérer une galaxie de l'aube des temps|de photographier une exoplanète glacée|de trouver du CO2 sur un monde lointain|de capter deux galaxies en collision
sci_remind = corrélation n'est pas causalité|la Lune s'éloigne lentement|nous sommes faits de poussière d'étoiles|les bananes sont un tout petit peu radioactives|Pluton reste une planète dans nos cœurs
experiment = la PCR|la culture cellulaire|le titrage|le western blot|la simulation|l'analyse des sols
kid_q = le ciel est bleu|les chats ronronnent|on a des empreintes digitales|la mer est salée|les aimants marchent
tags = science|espace|astronomie|biologie|physique|JWST|recherche|climat|CNRS

# cinema
> Je viens de voir {film}. {film_verdict}
> Le nouveau {director} est {film_adj}. {film_detail}
> Séance ciné: {price} la place, {price} le pop-corn. {react}
> Avis impopulaire: {film}, c'est {overrated}.
> Je revois {film} pour la {nth} fois et {rewatch}.
> Vu {film_genre} {film_adj} à {fest}. La rencontre avec l'équipe était {qa}.
> Mon voisin de siège a commenté tout {film} à voix haute. {react}
film = Anatomie d'une chute|Intouchables|Le Fabuleux Destin d'Amélie Poulain|La Haine|Portrait de la jeune fille en feu|Les Misérables|Le Comte de Monte-Cristo|L'Histoire de Souleymane|Titane|Aftersun|Parasite|Past Lives|Le Règne animal|Emilia Pérez|La Chimère|Les Trois Mousquetaires|Le Voyage de Chihiro|Jeanne Dielman|Le Dîner de cons|OSS 117
director = Justine Triet|Céline Sciamma|Jacques Audiard|Agnès Varda|Ladj Ly|Julia Ducournau|Bertrand Tavernier|François Ozon|Mati Diop|Alice Diop|Quentin Dupieux|Cédric Klapisch
film_verdict = J'y pense encore.|Un film parfait.|Je me suis endormi deux fois.|La musique vaut le déplacement.|J'ai pleuré en public, aucune honte.|Quarante minutes de trop.
film_adj = magnifique|déroutant|tendu|hilarant|trop long|obsédant|délicieusement bizarre|pudique
film_detail = Allez le voir sur le plus grand écran possible.|Le travail sur le son est dingue.|L'actrice principale mérite tous les prix.|La moitié de la salle est partie.
overrated = surcoté|une comédie, en fait|mieux que le livre|un chef-d'œuvre et je mourrai sur cette colline
nth = deuxième|troisième|cinquième|dixième|centième
rewatch = il tient toujours la route|je comprends enfin la fin|les costumes sont encore plus beaux|je remarque de nouveaux détails à chaque fois
film_genre = un documentaire|un thriller|un film d'horreur|une comédie romantique|un film d'animation|un western|un polar
fest = Cannes|Annecy|Deauville|la Berlinale|Gérardmer|la cinémathèque|l'Étrange Festival
qa = gênante|brillante|surtout des questions sur le chien|plus longue que le film
tags = cinéma|film|Cannes2026|César|cinéphile|séries|Letterboxd

# finance
> {cashtag} prend {pct}% aujourd'hui et j'ai vendu la semaine dernière. {react}
> Je réfléchis à {cashtag} après la publication des résultats. {fin_take}
> Pas un conseil financier: {fin_advice}.
> {cashtag} ou {cashtag}: vous gardez quoi jusqu'en {month}?
fin_take = Les prévisions sont molles.|Les marges impressionnent.|Tout est déjà dans le prix.|Je n'y touche pas.
fin_advice = ETF et sérénité|n'achetez pas ce que vous ne comprenez pas|le marché peut rester irrationnel plus longtemps que vous ne restez solvable
tags = bourse|investissement|CAC40|finance

# reply
> Tellement d'accord.
> C'est exactement ça.
> Pas du tout d'accord, désolé.
> Source?
> Pareil ici!
> Je n'aurais pas mieux dit.
> Attends, sérieux?
> Ça a bien vieilli.
> Tweet sous-coté.
> J'envoie ça à mon groupe WhatsApp.
> Avec tout le respect, non.
> Pourquoi c'est si vrai?
> Félicitations!
> Oh non...
> J'allais dire la même chose.
> {react}
> Contre-argument: {counter}.
> C'est exactement ce qui est arrivé à {friend} {day}.
> Si c'est vrai, c'est énorme.
> Merci pour le partage - en favoris.
> Toi qui postes ça à {time}...
> Je le dis depuis {years} ans.
> Mdr, trop vrai.
counter = ça dépend|t'as essayé d'éteindre et de rallumer|l'argent|la météo|personne n'a demandé|les vibes
years = 2|3|5|10

# edit
> (édit: faute de frappe)
> ÉDIT: j'avais oublié le lien {url}
> (édité pour ajouter: merci à tous!)
> édit: {n} et pas {n}, pardon
> (édit: j'ai corrigé le nom)
> PS: {react}

# bio
> {job} à {bio_place}. Passionné de {hobby}. Les avis n'engagent que moi.
> {hobby}, {hobby2} et {hobby3}. {bio_tail}
hobby2 = pâtisserie|natation|BD|podcasts|théâtre|yoga
hobby3 = mauvais jeux de mots|sieste|voyages en train|fromage|séries
> {job} chez {company}. Ex-{company}. {bio_tail}
> Parent de {kids} enfants. {job}. Le week-end: {hobby}.
kids = 2|3|4
> {pronouns} - {job} - {hobby}
> Je fais de mon mieux. {bio_tail}
job = Développeuse|Designer produit|Infirmier|Prof des écoles|Data scientist|Cheffe cuisinière|Journaliste|Doctorante|Photographe|Barista|Architecte|Comptable|Bibliothécaire|Kiné|Chercheur|Ingé son|Fonctionnaire|Autrice|Boulanger|Étudiant
hobby = course à pied|escalade|levain|foot|vélo|ornithologie|vinyles|cinéma|échecs|jardinage|tricot|jeux de société|café|jazz|randonnée|photo
bio_place = Paris|Lyon|Marseille|Montréal|Bruxelles|Nantes|Bordeaux|Lille|Toulouse|Genève
bio_tail = Mes tweets n'engagent que moi.|Surtout des chats.|RT ≠ approbation.|Ici pour les mèmes.|Toujours en apprentissage.|Sûrement dehors.|Carbure au café.
company = Doctolib|Radio France|une petite startup|l'AP-HP|Decathlon|Ubisoft|Blablacar|une banque|la mairie|OVHcloud
pronouns = elle|il|iel
location = Paris, France|Lyon|Marseille|Montréal, QC|Bruxelles|Nantes|Bordeaux|Lille|Toulouse|Genève|Bretagne|Quelque part en Auvergne|Rennes|Strasbourg|Québec|sur la ligne 13|Nice|Grenoble|Dijon|Pays basque
first = Camille|Léa|Manon|Chloé|Inès|Jade|Louise|Emma|Zoé|Clara|Lucie|Juliette|Margaux|Élodie|Amélie|Océane|Anaïs|Mathilde|Pauline|Sarah|Noémie|Agathe|Romane|Hélène|Céline|Sophie|Aurélie|Nathalie|Isabelle|Maëlle|Louis|Hugo|Lucas|Gabriel|Arthur|Jules|Raphaël|Thomas|Nathan|Théo|Mathis|Maxime|Antoine|Baptiste|Clément|Julien|Nicolas|Alexandre|Guillaume|Romain|Quentin|Benoît|François|Jérôme|Stéphane|Sébastien|Olivier|Thibault|Étienne|Loïc|Gaël|Yannick|Karim|Mehdi|Sofiane|Yasmine|Leïla|Nadia|Amina|Fatou|Moussa|Awa|Kevin|Mélanie|Adrien|Timothée|Bastien|Cécile|Gaëlle|Solène|Rémi|Noël|Cyril|Fabien
last = Dubois|Martin|Bernard|Durand|Lefèvre|Moreau|Laurent|Simon|Michel|Leroy|Roux|David|Bertrand|Morel|Fournier|Girard|Bonnet|Dupont|Lambert|Fontaine|Rousseau|Vincent|Muller|Faure|André|Mercier|Blanc|Guérin|Boyer|Garnier|Chevalier|Legrand|Gauthier|Perrin|Robin|Clément|Morin|Roussel|Mathieu|Masson|Marchand|Duval|Denis|Dumont|Lemaire|Meyer|Dufour|Meunier|Brun|Blanchard|Giraud|Joly|Rivière|Brunet|Gaillard|Barbier|Arnaud|Gérard|Roche|Renard|Schmitt|Leroux|Colin|Vidal|Caron|Picard|Fabre|Aubert|Lemoine|Renaud|Dumas|Lacroix|Bourgeois|Leclerc|Payet|Benoît|Diallo|Traoré|Benali|Haddad|Nguyen|Le Gall|Le Goff|Lévêque|Ménard|Hoarau|Tremblay|Gagnon|Côté
handle = lyon|paris|mtl|bzh|cuisine|velo|cine|geek|foot|lit|photo|zik|code|bxl
"#;
