//! English vocabulary and templates.
//!
//! Format (parsed once per `generate` call, see `vocab.rs`):
//! `# section` starts a section, `> template` adds a sentence template,
//! `key = a|b|c` adds slot values (repeated keys append). Templates and
//! values use canonical typography: `'` apostrophes, `"` quote pairs,
//! `...` ellipses and ` - ` dashes; the styler rewrites them per author.

pub(crate) const EN: &str = r#"
# common
open = Honestly,|Okay so|Hot take:|Reminder:|Not gonna lie,|PSA:|Quick thought:|Unpopular opinion:|Fun fact:|Random thought:|So...|Update:|Genuine question:|Confession:|Small win:
react = Love it.|Could be worse; could be raining.|What a time to be alive.|I can't even.|Never again.|10/10 would recommend.|Send help.|Worth it.|Not mad about it.|We'll see.|Classic.|Unreal.|I'm done.|Life is good.|Wild.|Go figure.|Can't complain.|Absolutely not.|Living my best life.|Character development.|No notes.
closer = Anyway.|Thoughts?|Just me?|Back to work.|Am I wrong?|More soon.|That's it, that's the post.|Details below.|Thread later, maybe.|Don't @ me.|Carry on.|You heard it here first.
feel = thrilled|exhausted|annoyed|curious|nostalgic|grateful|confused|impressed|skeptical|hyped|relieved|stressed|furious|smug|sleepy|inspired
day = on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|on Saturday|on Sunday|this morning|tonight|yesterday|last weekend|at lunchtime
friend = my sister|my flatmate|a coworker|my neighbour|my dad|my best friend|a stranger on the bus|my kid|the barista|my landlord|my mum|my partner|an old classmate|my dentist
intens = really|so|absolutely|genuinely|ridiculously|surprisingly|quietly|deeply|kind of|low-key|properly|seriously
adj_wild = wild|chaotic|unhinged|glorious|exhausting|absurd|bonkers|surreal
city = London|Manchester|Leeds|Bristol|Glasgow|Edinburgh|Dublin|New York|Boston|Chicago|Seattle|Austin|Toronto|Vancouver|Sydney|Melbourne|Brighton|Cardiff|Denver|Portland|Liverpool|Sheffield|Belfast|Oakland
month = January|February|March|April|May|June|July|August|September|October|November|December
dur = two hours|three days|the whole afternoon|45 minutes|an entire sprint|all night|half a day|a full week|twenty minutes
misc_tail = {closer}|{react}|Details to follow.|Photos soon.

# tech
> Spent {dur} chasing a {bug} in our {stack} {svc}. The fix was one line... {react}
> {open} {stack} is {intens} {good} for {usecase}, but the {pain} is real.
> Our {svc} went down {day} because of a {bug}. Postmortem summary: "{excuse}"
> Just shipped {feature} to production - {feeling_line}.
> If your {svc} needs {n} {infra} to serve {big} requests a day, that's not scale, that's {badthing}.
> Finally migrated the {svc} from {stack} to {stack}. Build times went from {n} minutes to {n} seconds.
> Reading the {stack} release notes: {feature} looks {good}.
> The new {gadget} arrived. First impressions: {impr}.
> Who else is fighting {pain} today?
> Pair programming with {friend}, who has never touched {stack}. Surprisingly {good}.
> Reminder that "{maxim}" is still the best advice in software.
> Anyone have a {good} guide to {concept}? Asking for a {stack} {svc}.
> Our CI takes {n} minutes. I could cook {dish_small} in that time.
> Wrote a tiny {stack} script to {automate} and it saved me {dur}.
> Code review comment of the day: "{review_comment}"
> {pct}% test coverage and the {bug} still got through. Of course it did.
> Trying {tool} for {usecase} this week. So far {impr}.
> My note-taking app now costs $9.99 a month. {react}
> Hiring a {stack} dev who understands {concept}. Remote OK, salary {salary}.
bug = race condition|memory leak|off-by-one error|deadlock|timezone bug|Unicode bug|null pointer|cache invalidation issue|flaky test|DNS misconfiguration|silent integer overflow|stale lockfile|expired certificate|retry storm|encoding mixup|leap second bug
stack = Rust|Go|Python|TypeScript|Kotlin|Elixir|Java|Swift|Postgres|SQLite|Kubernetes|Terraform|React|Svelte|Django|Rails|Haskell|Zig|OCaml|C++|Scala|Clojure|Erlang|Deno
svc = billing service|auth layer|search index|mobile app|data pipeline|API gateway|cron job|monolith|recommendation engine|payment flow|build system|dashboard|ingest worker|notification service
good = solid|underrated|delightful|elegant|boring in the best way|fast|reliable|pleasant|clever|mature|ergonomic|well documented
usecase = CLI tools|backend services|embedded work|data crunching|prototyping|web scrapers|game engines|teaching beginners|log analysis|home automation
pain = borrow checker|dependency hell|compile time|YAML indentation|config sprawl|vendor lock-in|on-call rotation|meeting load|context switching|JavaScript tooling|merge conflicts|legacy schema
excuse = it worked on my machine|we thought the retry would handle it|nobody owned that alert|the intern had prod access|the config was copied from staging|it's always DNS|the cache lied to us
feature = dark mode|offline sync|two-factor login|the new onboarding flow|streaming exports|incremental builds|full-text search|rate limiting|a rewrite of the parser|keyboard shortcuts|audit logs
feeling_line = zero incidents so far|fingers crossed|please don't page me|coffee fully earned|let's see what breaks|the dashboards are all green
infra = servers|containers|load balancers|databases|queues|microservices|GPUs|availability zones
badthing = a bonfire|a hostage situation|a cry for help|an invoice|a very expensive hobby|a resume-driven architecture
gadget = laptop|mechanical keyboard|e-reader|phone|standing desk|monitor|pair of headphones|smartwatch|router|tablet|webcam
impr = the keyboard is lovely and the battery is mediocre|gorgeous screen, awful webcam|heavier than expected|fast, quiet, overpriced|honestly perfect|the hinge feels cheap|promising but buggy|snappy and weirdly addictive
maxim = make it work, make it right, make it fast|there is no cloud, just someone else's computer|premature optimization is the root of all evil|naming things is hard|delete more code than you write|measure before you optimise
concept = consistent hashing|CRDTs|property-based testing|async runtimes|zero-downtime migrations|observability|memory ordering|vector search|type-level programming|garbage collection|backpressure|idempotency keys
automate = rename my photos|sort my invoices|water the plants|check train delays|archive old tickets|generate release notes
review_comment = nit: trailing whitespace|why is this a singleton|this works but I hate it|LGTM, I didn't read it|can we not|who hurt you
tool = Neovim|Zed|Helix|VS Code|Emacs|JetBrains|tmux|Nix|Bazel|htmx
salary = competitive|£85k|$160k|€70k|"negotiable"|not disclosed, sadly
tags = Rust|RustLang|golang|Python|DevOps|opensource|100DaysOfCode|programming|webdev|AI|cybersecurity|SRE|database|TechTwitter

# football
> What a game! {team} {score} {team}. {player} was {perf} tonight.
> {team} fans, how are we feeling after that {result}?
> {player} to {team} for {fee}? This transfer window is {adj_wild}.
> The ref gave a penalty for THAT? {react}
> Watched the match at {pub} with {friend}. {n} goals, {n} yellow cards, zero regrets.
> Kick-off at {time}. Prediction: {team} {score}.
> {team}'s midfield is {perf2}. Somebody call {manager}.
> Sunday league update: we lost {score} and I pulled a hamstring. Peak {adj_wild} football.
> The atmosphere at {stadium} tonight - {atmos}.
> {player} scoring from {distance} yards. I've watched it {n} times already.
> VAR took {n} minutes to decide that. {react}
> Season ticket renewed: {price}. The things we do for {team}...
team = Arsenal|Liverpool|Chelsea|Spurs|Man City|Man United|Newcastle|Aston Villa|Brighton|West Ham|Everton|Real Madrid|Barcelona|Bayern|PSG|Inter|Juventus|Celtic|Wrexham|Leeds|Sunderland|Fulham|Brentford|Dortmund
player = Saka|Salah|Haaland|Palmer|Son|Rice|Bellingham|Mbappé|Vinícius|Ødegaard|Kane|Foden|Isak|Yamal|Musiala|Rashford|Trent|Gordon|Watkins|Saliba
perf = unplayable|invisible|everywhere|magnificent|clinical|a passenger|on another planet|wasteful|immense
perf2 = a mess|a masterclass|too slow|completely overrun|surprisingly solid|missing a leader|held together with tape
result = late equaliser|humiliating defeat|smash-and-grab win|goalless draw|comeback|penalty shootout|derby loss|cup exit
fee = £60m|€100m|a free transfer|£35m plus add-ons|an undisclosed fee|a loan with option to buy
pub = the Red Lion|my local|the Crown and Anchor|a sports bar in Camden|the Kings Arms|the Wheatsheaf
manager = Pep|Arteta|Ange|Ancelotti|Xabi Alonso|Emery|Slot|a sports psychologist|my nan
stadium = Anfield|the Emirates|Old Trafford|St James' Park|Villa Park|the Bernabéu|Goodison|Celtic Park|Elland Road|Craven Cottage
atmos = absolutely electric|quieter than a library|goosebumps from start to finish|loud, wet and wonderful|pure noise
distance = 25|30|35|40|halfway, basically|an impossible angle, 20
tags = PremierLeague|UCL|COYG|YNWA|MUFC|MCFC|football|EPL|transfers|matchday|FACup

# cooking
> Made {dish} tonight with {ingr} and {ingr}. {verdict}
> Tip: add a pinch of {spice} to your {dish}. Thank me later.
> My {dough} finally {dough_result} after {n} tries. {react}
> Today's lunch: {dish} for {price}. {verdict2}
> Is it weird to put {ingr} in {dish}? Asking for {friend}.
> Grandma's rule for {dish}: "{grandma}"
> Farmers market haul: {ingr}, {ingr}, {ingr} and way too many {fruit}.
> Cooking {dish} for {n} people {day}. Wish me luck...
> The secret to good {dish} is {secret}. Nobody believes me.
> Meal prep Sunday: {n} portions of {dish} and a {dessert} for morale.
> Oven preheated to {oven}, {dessert} in, fingers crossed.
dish = lasagne|shakshuka|chicken tikka masala|mushroom risotto|banana bread|pad thai|fish pie|ramen|tacos al pastor|bolognese|lentil soup|sourdough pizza|shepherd's pie|carrot cake|miso salmon|paella|chili con carne|pancakes|kimchi fried rice|beef stew|dal|gnocchi|jerk chicken|mac and cheese
dish_small = a full roast|three loaves of bread|a pot of chili|an entire lasagne|a tray of brownies
ingr = garlic|smoked paprika|brown butter|leeks|chickpeas|anchovies|fresh basil|ginger|tahini|sweet potato|halloumi|black beans|coriander|parmesan|crème fraîche|lemon zest|chorizo|spinach|feta|shallots|gochujang|capers|pecorino|aubergine
spice = cumin|nutmeg|sumac|cinnamon|cayenne|za'atar|saffron|cardamom|fennel seed|star anise|turmeric|smoked salt
dough = sourdough|focaccia|croissant dough|bagel dough|pasta dough|pie crust|brioche
dough_result = rose properly|came out crispy|didn't collapse|has an open crumb|actually tastes like something|looks like the picture
verdict = Absolute banger.|Would cook again.|Edible, barely.|The kids ate it, which is a miracle.|Restaurant quality, if I say so myself.|Too much salt, but still good.|Smoke alarm approved.
verdict2 = Bargain.|Not worth it.|Cheaper than making it myself.|Daylight robbery.|Honestly fair.
grandma = a glass of wine for the pot, two for the cook|never measure the garlic|if it smells done, it's done|patience is the main ingredient|butter fixes everything
fruit = plums|strawberries|apricots|figs|blueberries|pears|rhubarb|courgettes|tomatoes|gooseberries|quinces
secret = more butter|time|a screaming hot pan|salting the water properly|resting it overnight|ignoring the recipe
dessert = crumble|cheesecake|tarte tatin|sticky toffee pudding|lemon drizzle|tiramisu|pavlova
oven = 180°C|200°C|350°F|gas mark 4|220°C
tags = cooking|foodie|recipe|baking|sourdough|homecooking|vegan|dinner|GBBO

# weather
> {temp} and {wx} in {city} today. {wx_react}
> Forecast says {wx} all week. I'm {feel}.
> Got caught in {wx_event} on the way to work - {wx_aftermath}.
> Why is it {temp} in {month}? The climate is {adj_wild}.
> The sunset over {city} tonight was unreal. No filter.
> Layers worn today: {n}. Umbrellas lost this year: {n}. Living in {city} is {wx_life}.
> Met Office issued a {warning} warning for {wx_event}. {react}
> First {season_word} morning of the year and the {garden_thing} is {garden_state}.
wx = sunny|grey|drizzly|foggy|windy|humid|freezing|stormy|muggy|crisp and clear|overcast|snowy|sleety|bright but bitter
wx_event = a hailstorm|a downpour|sideways rain|a heatwave|black ice|a thunderstorm|gale-force wind|freezing fog
wx_aftermath = soaked to the bone|socks ruined|umbrella destroyed|hair gone|no regrets|laughing at this point
wx_react = Perfect running weather.|Staying in with tea.|Shorts weather, apparently.|The garden needed it.|My cat refuses to go out.|Sun cream or bust.|Heating on, guilt off.
wx_life = character building|a full-time job|a test of faith|mostly fine|a lot
warning = yellow|amber|red
season_word = frosty|warm|misty|proper spring|autumnal
garden_thing = lawn|windscreen|washing line|balcony|allotment
garden_state = white|steaming|soaked|glorious|a swamp
tags = weather|heatwave|rain|UKweather|sunset|snow|climate|StormWatch

# travel
> Landed in {dest} after a {n}-hour flight. First stop: {first_stop}.
> Train from {city} to {dest} was {train}. Would {train_verdict}.
> Hidden gem in {dest}: {gem}. Don't tell anyone.
> Packing for {dest} like I'm moving there forever. {n} pairs of shoes for {n} days...
> Passport control at {airport} took {dur}. {react}
> Booked {dest} for {month}. Recommendations welcome!
> Hostel in {dest}: {price} a night, {hostel}.
> Lost my luggage at {airport}. It's apparently in {dest} now, having a better holiday than me.
> Sunrise hike above {dest} this morning - {view}.
> Top tip for {dest}: {tip}.
dest = Lisbon|Kyoto|Marrakech|Reykjavik|Mexico City|Naples|Vienna|Copenhagen|Hanoi|Istanbul|Cape Town|Buenos Aires|Seoul|Porto|Edinburgh|Montreal|Barcelona|Tbilisi|Oaxaca|Ljubljana|Seville|Kraków|Bologna|Valparaíso
first_stop = a bakery|the old town|a noodle shop|the harbour|the flea market|a rooftop bar|the botanical garden|the cathedral|a tiny museum
train = smooth and scenic|delayed by two hours|packed like a sardine tin|surprisingly comfy|a rolling sauna
train_verdict = do it again|recommend|not recommend|rather walk next time
gem = a tiny jazz bar behind a laundromat|a bookshop with a resident cat|the viewpoint at sunrise|a family-run tapas place|a free walking tour|a tram line with the best views|a public bathhouse from 1890
airport = Heathrow|Gatwick|JFK|Schiphol|Charles de Gaulle|Frankfurt|Dublin Airport|Stansted|Lisbon airport
hostel = free breakfast and a very loud dorm|spotless and quiet|questionable showers but great people|a rooftop hammock
view = worth every blister|clouds below us|honestly spiritual|my calves are crying
tip = learn five words of the language|skip the main square|eat where the taxi drivers eat|buy the weekly transit pass|go in the shoulder season
tags = travel|wanderlust|travelgram|backpacking|slowtravel|interrail|citybreak|solotravel

# books
> Just finished {book_by}. {book_verdict}
book_by = "Middlemarch" by George Eliot|"The Secret History" by Donna Tartt|"Piranesi" by Susanna Clarke|"Klara and the Sun" by Kazuo Ishiguro|"Beloved" by Toni Morrison|"Station Eleven" by Emily St. John Mandel|"Normal People" by Sally Rooney|"Circe" by Madeline Miller|"The Road" by Cormac McCarthy|"The Left Hand of Darkness" by Ursula K. Le Guin|"Wolf Hall" by Hilary Mantel|"White Teeth" by Zadie Smith|"Kindred" by Octavia Butler|"Small Gods" by Terry Pratchett|"Demon Copperhead" by Barbara Kingsolver
> Currently reading {book_adj} {genre} and I can't put it down.
> {writer} is {intens} the best {writer_kind} of the last fifty years. Fight me.
> Book club picked "{book}" for {month}. Bold choice.
> My TBR pile is now {n} books tall. Buying more anyway.
> Rereading "{book}" and noticing {notice}.
> Library haul: {n} books, zero late fees. The librarian knows me by name.
> Started "{book}" on the train and missed my stop. {react}
book = Middlemarch|The Secret History|Piranesi|Klara and the Sun|Beloved|Station Eleven|The Remains of the Day|Normal People|Circe|Dune|The Road|Jane Eyre|Lonesome Dove|Pachinko|Tomorrow, and Tomorrow, and Tomorrow|The Overstory|Wolf Hall|Project Hail Mary|The Left Hand of Darkness|Rebecca|Demon Copperhead|Babel
writer = George Eliot|Donna Tartt|Susanna Clarke|Kazuo Ishiguro|Toni Morrison|Emily St. John Mandel|Sally Rooney|Madeline Miller|Frank Herbert|Cormac McCarthy|Ursula K. Le Guin|Hilary Mantel|Zadie Smith|Octavia Butler|Terry Pratchett|Barbara Kingsolver
book_verdict = Devastating. Five stars.|Beautiful prose, baggy middle.|Overhyped, sorry.|I need to lie down.|The last chapter wrecked me.|Three stars, great ending.|Instantly one of my favourites.
book_adj = a gloriously weird|a slow-burning|a sprawling|a short but brutal|a cosy|a deeply unsettling|an unexpectedly funny
genre = mystery|fantasy novel|family saga|memoir|sci-fi epic|literary thriller|historical novel|essay collection|graphic novel|short story collection|cosy crime novel
writer_kind = novelist|essayist|short story writer|poet|crime writer
notice = all the foreshadowing|how funny it actually is|how young the narrator is|the weather as a character|how much I missed the first time
tags = books|amreading|BookTwitter|booktok|reading|bookclub|fantasy|libraries

# music
> Can't stop playing {album_by}. {music_verdict}
album_by = Kid A by Radiohead|Lemonade by Beyoncé|To Pimp a Butterfly by Kendrick Lamar|Folklore by Taylor Swift|Punisher by Phoebe Bridgers|Rumours by Fleetwood Mac|Disintegration by The Cure|Mezzanine by Massive Attack|Brat by Charli XCX|Homogenic by Björk|Sometimes I Might Be Introvert by Little Simz|SOS by SZA|For Emma, Forever Ago by Bon Iver|GUTS by Olivia Rodrigo|Blonde by Frank Ocean|Hunky Dory by Bowie|Multitude by Stromae
> Saw {artist} live at {venue} last night. {concert}
> Hot take: the best {artist} era was {era}.
> Learning {instrument} at {age}. My neighbours hate me.
> Spotify Wrapped says I listened to {artist} for {big} minutes. No further questions.
> Vinyl haul: {n} records for {price}. {react}
> Tickets for {artist} at {venue} cost {price}. In this economy?
> Someone on the bus is playing {artist} out loud and honestly, {bus_music}.
artist = Radiohead|Beyoncé|Kendrick Lamar|Taylor Swift|IDLES|Phoebe Bridgers|Arctic Monkeys|Björk|Little Simz|Fleetwood Mac|The Cure|Bon Iver|SZA|Massive Attack|Wet Leg|Boygenius|Nick Cave|Charli XCX|Bowie|Stromae|Olivia Rodrigo|Khruangbin
venue = Brixton Academy|the O2|Glastonbury|a tiny pub in Hackney|Madison Square Garden|the Royal Albert Hall|Primavera|Coachella|the Barrowland|Red Rocks
concert = Voice is gone. Worth it.|Best gig of my life.|Sound was muddy but the vibes were immaculate.|They played the deep cuts!|Too many phones in the air.|Cried during the encore.
era = the early stuff|the experimental years|the comeback|the debut, obviously|the live albums
instrument = the cello|bass guitar|the drums|piano|the ukulele|the saxophone|synths|the violin|the banjo
age = 34|41|29|52|60|38
music_verdict = Every track slaps.|Album of the year, no contest.|It's a grower.|Crying on the bus again.|Perfect for rainy mornings.|Side B is flawless.
bus_music = it's a vibe|it's a crime|I'm singing along|I respect it
tags = NowPlaying|music|vinyl|livemusic|newmusic|AOTY|concert|Glastonbury

# city
> The {transport} was {delay} again this morning. {react}
> New {shop} opened on {street}. {shop_verdict}
> Rent for a one-bed in {city} is now {rent} a month. {rent_react}
> Overheard on the {transport}: "{overheard}"
> Someone left a {object} on the pavement outside my flat with a note saying "{note}".
> {city} in {season} is {city_mood}.
> The council finally fixed the {street_thing} on {street}. Only took {years} years.
> Fox in the garden at {time}, staring at me like I owe it money.
transport = bus|tube|tram|train|subway|ferry|night bus|Overground|Elizabeth line
delay = 20 minutes late|cancelled|rammed|on time for once|stuck in a tunnel|diverted for no reason
shop = bakery|coffee shop|ramen bar|bookshop|climbing gym|wine bar|record store|laundrette|bike repair shop|vintage shop|cheese shop
street = the high street|my road|Market Street|the corner by the station|Church Lane|the canal path|Mill Road
shop_verdict = Queue already round the block.|Four quid for a croissant, we're doomed.|Genuinely lovely staff.|Gentrification speedrun.|I'll be there every day.
rent = £1,800|$2,900|£2,250|$3,400|€1,650|£1,400
rent_react = Cool cool cool.|I live in a cupboard.|Moving to a boat.|Send help.|Back to living with my parents, then.
overheard = I'm not lost, I'm exploring|she said she's vegan but only on weekdays|my therapist says I should stop texting him|is this the stop for the zoo?|the pigeon looked at me first|I've never seen a cloud before
object = sofa|fridge|box of books|rocking chair|bike wheel|lamp|mirror|potted fern|typewriter
note = free to a good home|works, mostly|please take me|haunted, probably|do not microwave
season = spring|summer|autumn|winter|August|December
city_mood = magic|chaos|the best place on earth|a lot, honestly|unbearable and I love it
street_thing = pothole|streetlight|bench|zebra crossing|bike lane
years = 2|3|5|7|11
tags = citylife|London|NYC|commute|urbanism|rent|neighbourhood|cycling

# work
> Had {n} meetings today and I'm {feel}. {meeting_react}
> Manager: "{mgr_quote}" Me: {me_react}
> Day {n} of the new job. {newjob}
> Out of office until {weekday}. Do not contact me about {work_thing}.
> Remote work tip: {remote_tip}.
> Performance review went {review}. Raise: {raise}.
> Interviewing for a {role} role and they asked me about {interview_q}. {react}
> Inbox at {big} unread. Declaring email bankruptcy.
> The office coffee machine is broken and productivity is down {pct}%.
meeting_react = Could have been an email.|At least there were biscuits.|My camera stayed off.|We decided to schedule another meeting.
mgr_quote = quick sync?|let's take this offline|can you own this going forward?|we're a family here|small favour...|per my last email
me_react = *quietly updates CV*|sure!|I'm on leave|*leaves the chat*|happy to help (I am not)
newjob = Still don't know where the toilets are.|Already fixed a bug in prod.|Everyone is lovely.|Laptop hasn't arrived yet.|I've been given {n} onboarding docs.
weekday = Monday|Tuesday|Wednesday|Thursday|Friday|next week|the 3rd
work_thing = the quarterly deck|synergies|the roadmap|spreadsheets|OKRs|the reorg
remote_tip = get dressed, shoes included|eat lunch away from your desk|a second monitor changes everything|walk round the block at 9 as a fake commute|mute notifications after 6
review = fine|great|weird|surprisingly well|about as expected
raise = 2%|a pizza party|a new title|a firm handshake|none, but "visibility"
role = senior engineer|product manager|data analyst|designer|marketing lead|nurse|teacher|accountant
interview_q = my biggest weakness|where I see myself in five years|reversing a linked list|a time I failed|why manhole covers are round
tags = worklife|remotework|hiring|career|jobs|leadership|productivity|MondayMotivation

# science
> New paper: {finding}. {sci_react}
> {pct}% of {sci_subject} are {sci_fact}. Nature is {adj_sci}.
> Watched the {launch} launch {day}. {launch_react}
> The James Webb telescope just {jwst}. {react}
> Reminder that {sci_remind}.
> Spent {dur} in the lab and the {experiment} failed again. Science!
> My kid asked why {kid_q} and I had to look it up. {react}
finding = octopuses may dream in colour|bees can count to four|microplastics found in cloud water|a new antibiotic from soil bacteria|tardigrades survive open space|crows recognise individual faces|sleep clears waste from the brain|whales have regional accents
sci_react = Fascinating.|Reading the preprint now.|Sample size of twelve, so calm down.|Peer review when?|This is why we fund basic research.
sci_subject = ocean species|the genes in your body|stars in the galaxy|insect species|deep-sea microbes|known exoplanets
sci_fact = still undescribed|older than the Sun|completely unstudied|stranger than fiction|bioluminescent
adj_sci = metal|wild|humbling|beautiful|terrifying
launch = Falcon 9|Ariane 6|Artemis|Starship|Soyuz|New Glenn
launch_react = Chills.|It blew up, but in a useful way.|Perfect landing.|Scrubbed again.|My kids cheered.
jwst = spotted a galaxy from the dawn of time|imaged a frozen exoplanet|found carbon dioxide on a distant world|caught two galaxies colliding
sci_remind = correlation is not causation|the Moon is slowly drifting away|you are made of stardust|bananas are radioactive, a tiny bit|Pluto is still a planet in our hearts
experiment = PCR|cell culture|titration|western blot|simulation|soil sample run
kid_q = the sky is blue|cats purr|we have fingerprints|the sea is salty|magnets work
tags = science|space|astronomy|biology|physics|JWST|research|climate|STEM

# cinema
> Just watched {film}. {film_verdict}
> {director}'s new one is {film_adj}. {film_detail}
> Cinema trip: {price} for the ticket, {price} for popcorn. {react}
> Unpopular opinion: {film} is {overrated}.
> Rewatching {film} for the {nth} time and {rewatch}.
> Saw a {film_adj} {film_genre} at {fest}. The Q and A was {qa}.
> The person next to me at {film} narrated the whole plot. {react}
film = Past Lives|Oppenheimer|Dune: Part Two|Aftersun|The Zone of Interest|Parasite|Everything Everywhere All at Once|Anatomy of a Fall|Paddington 2|Mad Max: Fury Road|The Holdovers|Poor Things|Barbie|Perfect Days|Spirited Away|Heat|Alien|The Substance|Challengers|Arrival
director = Greta Gerwig|Denis Villeneuve|Bong Joon-ho|Celine Song|Yorgos Lanthimos|Christopher Nolan|Jonathan Glazer|Justine Triet|Wim Wenders|Sofia Coppola|Jordan Peele|Wes Anderson
film_verdict = Still thinking about it.|A perfect film.|Fell asleep twice.|The score alone is worth it.|Cried in public, no shame.|Too long by forty minutes.
film_adj = gorgeous|baffling|tense|hilarious|overlong|haunting|deliciously weird|restrained
film_detail = Go see it on the biggest screen you can.|The sound design is ridiculous.|The lead deserves every award.|Half the audience walked out.
overrated = overrated|actually a comedy|better than the book|a masterpiece and I'll die on this hill
nth = second|third|fifth|tenth|hundredth
rewatch = it still holds up|I finally get the ending|the costumes are even better|I notice new things every time
film_genre = documentary|thriller|horror film|romcom|animated feature|western|noir
fest = the London Film Festival|Sundance|the Berlinale|TIFF|Cannes|the local film society
qa = awkward|brilliant|mostly people asking about the dog|longer than the film
tags = film|movies|cinema|Letterboxd|FilmTwitter|Oscars

# finance
> {cashtag} up {pct}% today and I sold last week. {react}
> Thinking about {cashtag} after the earnings call. {fin_take}
> Not financial advice: {fin_advice}.
> {cashtag} vs {cashtag}: which one are you holding into {month}?
fin_take = Guidance looks soft.|Margins are impressive.|Priced for perfection.|I'm not touching it.
fin_advice = index funds and chill|don't buy what you don't understand|the market can stay irrational longer than you can stay solvent
tags = investing|stocks|markets|personalfinance

# reply
> Totally agree.
> This is the way.
> Hard disagree, sorry.
> Source?
> Ha, same here.
> Couldn't have said it better.
> Wait, really?
> This aged well.
> Underrated post.
> Sending this to my group chat.
> Respectfully, no.
> Okay but why is this so accurate?!
> Congrats!
> Oh no...
> Came here to say this.
> {react}
> Counterpoint: {counter}.
> This is exactly what happened to {friend} {day}.
> Big if true.
> Thanks for sharing - bookmarked.
> Not you posting this at {time}...
> I've been saying this for {years} years.
counter = it depends|have you tried turning it off and on again|money|the weather|nobody asked|vibes
years = 2|3|5|10

# edit
> (edit: typo)
> EDIT: forgot the link {url}
> (edited to add: thanks everyone!)
> edit: {n} not {n}, sorry
> (edit: fixed the name)
> ETA: {react}

# bio
> {job} based in {bio_place}. {hobby} enthusiast. Opinions my own.
> {hobby}, {hobby2} and {hobby3}. {bio_tail}
hobby2 = baking|swimming|comics|podcasts|theatre|yoga
hobby3 = bad puns|naps|train journeys|cheese|telly
> {job} at {company}. Ex-{company}. {bio_tail}
> Parent of {kids}. {job}. {hobby} at weekends.
kids = two|three|one very loud toddler|twins
> {pronouns} - {job} - {hobby}
> Trying my best. {bio_tail}
job = Software engineer|Product designer|Nurse|Teacher|Data scientist|Chef|Journalist|PhD student|Photographer|Barista|Architect|Accountant|Librarian|Physio|Researcher|Sound engineer|Civil servant|Writer|Baker|Student
hobby = Running|Climbing|Sourdough|Football|Cycling|Birdwatching|Vinyl|Film|Chess|Gardening|Knitting|Board games|Coffee|Jazz|Hiking|Photography
bio_place = London|Manchester|Dublin|Brooklyn|Toronto|Glasgow|Bristol|Melbourne|Leeds|Seattle
bio_tail = Tweets are mine.|Mostly cats.|RTs are not endorsements.|Here for the memes.|Always learning.|Probably outside.|Powered by tea.
company = Monzo|the BBC|a tiny startup|the NHS|Shopify|Spotify|Deliveroo|a bank|the council|Google
pronouns = she/her|he/him|they/them
location = London, England|Manchester, UK|Brooklyn, NY|Toronto, Ontario|Dublin, Ireland|Bristol|Somewhere on the M25|Seattle, WA|Glasgow, Scotland|Austin, TX|Melbourne, Australia|Leeds, UK|Edinburgh|Cardiff, Wales|Boston, MA|Vancouver, BC|in my head|The North|Earth|Brighton and Hove|Chicago, IL|Oakland, CA
first = Maya|Oliver|James|Emma|Noah|Olivia|Liam|Ava|Ethan|Sophia|Isla|Jack|Grace|Harry|Chloe|George|Amelia|Leo|Freya|Oscar|Ruby|Finn|Poppy|Theo|Ella|Arthur|Evie|Alfie|Daisy|Charlie|Rosie|Henry|Lily|Samuel|Hannah|Daniel|Sarah|Ben|Megan|Tom|Katie|Ryan|Laura|Josh|Priya|Aisha|Omar|Kwame|Yusuf|Mei|Hiro|Sean|Niamh|Callum|Eilidh|Marcus|Tasha|Devon|Jordan|Riley|Casey|Alex|Sam|Nina|Zara|Amir|Rohan|Ananya|Diego|Sofia|Mateo|Lena|Jonas|Ivy|Kai|Luca|Mia|Nathan|Owen|Rachel|Simon|Tara|Victor|Will|Yasmin|Ellie|Beth|Kieran|Declan|Ciara|Aoife|Fiona|Gareth|Rhys|Dylan|Seren
last = Kowalski|Smith|Jones|Taylor|Brown|Williams|Wilson|Evans|Thomas|Roberts|Johnson|Walker|Wright|Robinson|Thompson|White|Hughes|Edwards|Green|Hall|Wood|Harris|Clarke|Jackson|Patel|Khan|Ahmed|Singh|Nguyen|Chen|Murphy|Kelly|O'Brien|Byrne|Walsh|McCarthy|Campbell|Stewart|Anderson|Scott|Reid|Morgan|Price|Bennett|Cooper|Fisher|Hayes|Ward|Brooks|Gray|Mitchell|Okafor|Mensah|Adeyemi|Garcia|Lopez|Kim|Park|Tanaka|Novak|Larsen|Fischer|Rossi|Silva|Cohen|Baker|Carter|Parker|Turner|Collins|Foster|Marshall|Lloyd|Palmer|Russell|Fox|Chapman|Hunt|Holmes|Mason|Barker|Quinn|Doyle|Nolan|Rahman|Hussain|Okoye|Ndlovu|O'Connor
handle = coffee|runs|dev|pixel|nerd|fan|bakes|reads|codes|hikes|ldn|nyc|writes|cooks|films|tunes|science|fc
"#;
